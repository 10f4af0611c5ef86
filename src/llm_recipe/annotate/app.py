"""The annotation web app (FastAPI, server-rendered) and `llm-recipe annotate serve`.

    /login, /logout          a login token in, a new server-side session out (sessions.py): an
                             HttpOnly, SameSite=Strict cookie, Secure over HTTPS; logout ends it
    /annotate...             annotator pages (annotator_pages.py)
    /admin...                admin pages (admin_pages.py)
    /static/...              the page script (keyboard shortcuts) and style sheet

Every response carries security headers (a CSP without inline script, no framing, no referrer,
no caching of pages); errors are one line of text on a page, never a traceback: a malformed form
field is 422, a path naming nothing (an id out of range, not a number) 404, and an unexpected error
a 500 page (its traceback goes to the server's log), each on a connection that stays open.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import sessions, store
from .admin_pages import router as admin_router
from .annotator_pages import router as annotator_router
from .auth import COOKIE, LOGIN_COOKIE, csrf_ok, csrf_token
from .db import open_db, server_secret
from .site import HERE, LEASE_MINUTES, SESSION_HOURS, Site

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Guard:
    """ASGI middleware: the security headers on every response, and an unexpected error as a one-line
    500 page (the traceback goes to the log) on a connection that stays open."""

    def __init__(self, app, site: Site):
        self.app, self.site = app, site

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def with_headers(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).update(HEADERS)
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception as e:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # the response is on its way: nothing better to send
                raise
            page = self.site.render("error.html", 500, status=500, user=None,
                                    detail=f"the server could not handle this request ({type(e).__name__}); "
                                           "nothing was stored: try again")
            await page(scope, receive, with_headers)


def create_app(db: str, lease_s: float = LEASE_MINUTES * 60, session_s: float = SESSION_HOURS * 3600,
               secure_cookies: bool = False) -> FastAPI:
    engine = open_db(db)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site = Site(engine, server_secret(engine), lease_s, session_s, secure_cookies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(annotator_router)
    app.include_router(admin_router)

    app.add_middleware(Guard, site=site)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return site.render("error.html", exc.status_code, status=exc.status_code, detail=str(exc.detail),
                           user=None) if exc.status_code >= 400 else Response(status_code=exc.status_code,
                                                                               headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        loc = first.get("loc", ())
        if loc and loc[0] == "path":  # /admin/projects/99999999999999999999: a page that does not exist
            return site.render("error.html", 404, status=404, detail=f"no such page: {request.url.path[:100]}",
                               user=None)
        field = ".".join(str(x) for x in loc[1:]) or "request"
        return site.render("error.html", 422, status=422, detail=f"invalid {field}: {first.get('msg', 'bad value')}",
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
        site.set_cookie(response, request, LOGIN_COOKIE, pre)
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
        # a new session on every login; the one this browser had (if any) ends
        session = sessions.start(site.engine, user["id"], site.session_s, replaces=request.cookies.get(COOKIE))
        response = RedirectResponse("/admin" if user["role"] == "admin" else "/annotate", status_code=303)
        site.set_cookie(response, request, COOKIE, session, max_age=int(site.session_s))
        return response

    @app.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form(max_length=100)]) -> Response:
        session = request.cookies.get(COOKIE, "")
        if not session or not csrf_ok(site.secret, session, csrf):
            raise HTTPException(403, "the form's CSRF token is missing or wrong")
        sessions.end(site.engine, session)  # the cookie stops working everywhere, not only in this browser
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return app


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(db: str, host: str = "127.0.0.1", port: int = 8000, new_admin_token: bool = False, say=print, *,
          lease_minutes: float = LEASE_MINUTES, session_hours: float = SESSION_HOURS, secure_cookies: bool = False,
          trust_proxy: str | None = None, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
    """Run the server (until Ctrl-C); says the admin token when one is made (first start, or renewal).
    `ssl_certfile`/`ssl_keyfile`: serve HTTPS itself (cookies Secure). Behind a TLS proxy: either
    `trust_proxy` (the proxy's addresses, comma-separated, or "*"), whose X-Forwarded-Proto then
    counts, or `secure_cookies`; X-Forwarded-* headers from anyone else are ignored."""
    import uvicorn

    app = create_app(db, lease_minutes * 60, session_hours * 3600, secure_cookies)
    token = store.admin_token(app.state.site.engine, renew=new_admin_token)
    if token:
        say(f"admin login token (shown once; --new-admin-token makes another): {token}")
    if not is_loopback(host) and not (ssl_certfile or trust_proxy or secure_cookies):
        say(f"warning: listening on {host}: anyone who can reach it gets the login page; put HTTPS in front")
    scheme = "https" if ssl_certfile else "http"
    say(f"annotation server: {scheme}://{host}:{port}/login  (database: {db})")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", proxy_headers=bool(trust_proxy),
                forwarded_allow_ips=trust_proxy, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
