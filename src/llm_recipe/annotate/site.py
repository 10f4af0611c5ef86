"""What every page needs: the database, the server secret, templates, and who is asking.

Templates autoescape everything: prompts and answers are untrusted model output and are shown
as text, never as markup. Pages also send a Content-Security-Policy that allows scripts only
from /static, so even markup that slipped through could not run inline script.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Engine

from . import sessions
from .auth import COOKIE, csrf_ok, csrf_token

HERE = Path(__file__).resolve().parent
MAX_ID = 2**31 - 1  # the largest id any of the databases stores (PostgreSQL INTEGER): larger is no id at all
LEASE_MINUTES = 10.0  # how long an item shown to an annotator stays reserved for them
SESSION_HOURS = 12.0  # how long a login lasts


class Site:
    """`lease_s`: an item's reservation for the annotator it was shown to; `session_s`: a login's
    lifetime; `secure_cookies`: cookies are `Secure` even when this server sees plain HTTP (TLS ends at
    a proxy it does not trust to say so); over HTTPS they always are."""

    def __init__(self, engine: Engine, secret: bytes, lease_s: float = LEASE_MINUTES * 60,
                 session_s: float = SESSION_HOURS * 3600, secure_cookies: bool = False):
        self.engine = engine
        self.secret = secret
        self.lease_s, self.session_s, self.secure_cookies = lease_s, session_s, secure_cookies
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                            undefined=jinja2.StrictUndefined)

    def render(self, name: str, code: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=code)

    def user(self, request: Request) -> dict | None:
        session = request.cookies.get(COOKIE)
        return sessions.user_of(self.engine, session) if session else None

    def set_cookie(self, response: Response, request: Request, name: str, value: str,
                   max_age: int | None = None) -> None:
        """HttpOnly, SameSite=Strict, and Secure over HTTPS (the scheme uvicorn saw, or a trusted
        proxy's X-Forwarded-Proto: `serve(trust_proxy=...)`) or with `secure_cookies`."""
        secure = self.secure_cookies or request.url.scheme == "https"
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")

    def need(self, request: Request, role: str) -> dict:
        """The logged-in user if they have `role`; otherwise to the login page (no session) or 403."""
        user = self.user(request)
        if user is None:
            raise HTTPException(303, "log in first", headers={"Location": "/login"})
        if user["role"] != role:
            raise HTTPException(403, f"this page is for the {role} only")
        user["csrf"] = csrf_token(self.secret, request.cookies[COOKIE])
        return user

    def need_post(self, request: Request, role: str, csrf: str) -> dict:
        """`need`, for a write: the form must carry this session's CSRF token."""
        user = self.need(request, role)
        if not csrf_ok(self.secret, request.cookies[COOKIE], csrf):
            raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        return user


def site_of(request: Request) -> Site:
    return request.app.state.site
