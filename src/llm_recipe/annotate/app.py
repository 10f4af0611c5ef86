"""The annotation web app (FastAPI, server-rendered) and `llm-recipe annotate serve`.

    /login, /logout          a login token in, an HttpOnly SameSite=Strict session cookie out
    /annotate...             annotator pages (annotator_pages.py)
    /admin...                admin pages (admin_pages.py)
    /static/...              the page script (keyboard shortcuts) and style sheet

Every response carries security headers (a CSP without inline script, no framing, no referrer,
no caching of pages); errors are one line of text on a page, never a traceback.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import store
from .admin_pages import router as admin_router
from .annotator_pages import router as annotator_router
from .auth import COOKIE, LOGIN_COOKIE, csrf_ok, csrf_token
from .db import open_db, server_secret
from .site import HERE, Site

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/")


def create_app(db: str) -> FastAPI:
    engine = open_db(db)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site = Site(engine, server_secret(engine))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(annotator_router)
    app.include_router(admin_router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return site.render("error.html", exc.status_code, status=exc.status_code, detail=str(exc.detail),
                           user=None) if exc.status_code >= 400 else Response(status_code=exc.status_code,
                                                                               headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        return site.render("error.html", 400, status=400, detail=f"invalid {field}: {first.get('msg', 'bad value')}",
                           user=None)

    @app.get("/")
    def home(request: Request) -> Response:
        user = site.user(request)
        return RedirectResponse("/login" if user is None else "/admin" if user["role"] == "admin" else "/annotate",
                                status_code=303)

    @app.get("/login")
    def login_page(request: Request) -> Response:
        pre = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
        response = site.render("login.html", user=None, csrf=csrf_token(site.secret, "login:" + pre))
        _cookie(response, LOGIN_COOKIE, pre)
        return response

    @app.post("/login")
    def login(request: Request, token: Annotated[str, Form(max_length=200)],
              csrf: Annotated[str, Form(max_length=100)]) -> Response:
        pre = request.cookies.get(LOGIN_COOKIE, "")
        if not pre or not csrf_ok(site.secret, "login:" + pre, csrf):
            raise HTTPException(403, "the login form expired: reload the page and try again")
        user = store.user_of_token(site.engine, token.strip())
        if user is None:
            raise HTTPException(401, "unknown login token")
        response = RedirectResponse("/admin" if user["role"] == "admin" else "/annotate", status_code=303)
        _cookie(response, COOKIE, token.strip())
        return response

    @app.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form(max_length=100)]) -> Response:
        session = request.cookies.get(COOKIE, "")
        if not session or not csrf_ok(site.secret, session, csrf):
            raise HTTPException(403, "the form's CSRF token is missing or wrong")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return app


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(db: str, host: str = "127.0.0.1", port: int = 8000, new_admin_token: bool = False, say=print) -> None:
    """Run the server (until Ctrl-C); says the admin token when one is made (first start, or renewal)."""
    import uvicorn

    app = create_app(db)
    token = store.admin_token(app.state.site.engine, renew=new_admin_token)
    if token:
        say(f"admin login token (shown once; --new-admin-token makes another): {token}")
    if not is_loopback(host):
        say(f"warning: listening on {host}: anyone who can reach it gets the login page; put HTTPS in front")
    say(f"annotation server: http://{host}:{port}/login  (database: {db})")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
