"""Browser sessions, separate from login tokens, and the admin's control over annotators' tokens.

A login token is a long-lived credential the admin hands out. Logging in exchanges it for a random
session id (the cookie), stored only as its SHA-256 with an expiry; every login makes a new one (and
ends the session the browser had), so a session id seen before login is worthless after it. Logout
deletes the session on the server: a copied cookie stops working at once. Revoking or reissuing an
annotator's token ends all their sessions in the same transaction.

    start(engine, user_id, lifetime_s, replaces)   a new session id for the cookie
    user_of(engine, session_id)                    the user of a live session, else None
    end(engine, session_id)                        logout
    revoke_token(engine, user_id)                  the token and every session stop working
    reissue_token(engine, user_id)                 the same, and a new token (shown once)
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection, Engine

from .auth import new_token, token_hash
from .db import sessions, users

REVOKED = "revoked:"  # a token_hash that no token hashes to (SHA-256 hex has no ':'): nobody logs in


def start(engine: Engine, user_id: int, lifetime_s: float, replaces: str | None = None) -> str:
    """A new session of `user_id` for `lifetime_s` seconds; the session `replaces` (the browser's old
    cookie, if any) ends, and so does every expired session."""
    session_id, now = secrets.token_urlsafe(32), time.time()
    with engine.begin() as conn:
        if replaces:
            conn.execute(sessions.delete().where(sessions.c.id_hash == token_hash(replaces)))
        conn.execute(sessions.delete().where(sessions.c.expires_at <= now))
        conn.execute(sessions.insert().values(id_hash=token_hash(session_id), user_id=user_id, created_at=now,
                                              expires_at=now + lifetime_s))
    return session_id


def user_of(engine: Engine, session_id: str) -> dict | None:
    q = (select(users).join(sessions, sessions.c.user_id == users.c.id)
         .where(and_(sessions.c.id_hash == token_hash(session_id), sessions.c.expires_at > time.time())))
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def end(engine: Engine, session_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.id_hash == token_hash(session_id)))


def set_token_hash(conn: Connection, user_id: int, value: str) -> None:
    """A user's token replaced (or revoked), and every session of theirs ended, in `conn`'s transaction."""
    conn.execute(users.update().where(users.c.id == user_id).values(token_hash=value))
    conn.execute(sessions.delete().where(sessions.c.user_id == user_id))


def revoke_token(engine: Engine, user_id: int) -> None:
    with engine.begin() as conn:
        set_token_hash(conn, user_id, REVOKED + secrets.token_hex(28))


def reissue_token(engine: Engine, user_id: int) -> str:
    """A new login token for the user (shown once; only its hash is kept); the old one stops working."""
    token = new_token()
    with engine.begin() as conn:
        set_token_hash(conn, user_id, token_hash(token))
    return token


def is_revoked(user: dict) -> bool:
    return user["token_hash"].startswith(REVOKED)
