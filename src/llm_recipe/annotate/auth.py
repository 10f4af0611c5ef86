"""Login tokens, CSRF tokens and the per-annotator display order, all derived from secrets.

A login token is shown once (to the admin who creates the annotator) and stored only as its
SHA-256, so a copy of the database does not let anyone log in. The browser keeps the token in an
HttpOnly, SameSite=Strict cookie. Every form carries a CSRF token, an HMAC of the session under the
server secret: another site can make the browser post, but cannot read the token to post with.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets

COOKIE = "llmr_session"
LOGIN_COOKIE = "llmr_login"  # a random value the login form's CSRF token is bound to


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(secret: bytes, session: str) -> str:
    return hmac.new(secret, b"csrf:" + session.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session: str, given: str) -> bool:
    return hmac.compare_digest(csrf_token(secret, session), given)


def display_order(secret: bytes, annotator_id: int, item_id: int, n: int) -> list[int]:
    """The order (response indices) this annotator sees this item's answers in: random per item
    and annotator, yet the same on every visit (a reload or an edit shows the same sides), and
    recomputed on submission so the client cannot misreport it."""
    seed = hmac.new(secret, f"order:{annotator_id}:{item_id}".encode(), hashlib.sha256).digest()
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order
