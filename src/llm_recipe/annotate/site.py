"""What every page needs: the database, the server secret, templates, and who is asking.

Templates autoescape everything: prompts and answers are untrusted model output and are shown
as text, never as markup. Pages also send a Content-Security-Policy that allows scripts only
from /static, so even markup that slipped through could not run inline script.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from . import store
from .auth import COOKIE, csrf_ok, csrf_token

HERE = Path(__file__).resolve().parent


class Site:
    def __init__(self, engine: Engine, secret: bytes):
        self.engine = engine
        self.secret = secret
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                            undefined=jinja2.StrictUndefined)

    def render(self, name: str, code: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=code)

    def user(self, request: Request) -> dict | None:
        token = request.cookies.get(COOKIE)
        return store.user_of_token(self.engine, token) if token else None

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
