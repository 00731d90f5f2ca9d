"""Who is looking: the session cookie, CSRF, and the API client each page uses.

The session cookie holds the user's project-scoped Keystone token and nothing else; every
page asks the Identity API what that token is (cached there: one read). It is
``HttpOnly`` (no script reads it), ``Secure`` (Chromium and Firefox send secure cookies to
``localhost`` and loopback addresses over plain HTTP too), ``SameSite=Lax`` and limited
to ``/dashboard``.

CSRF: a random value in a second cookie (``SameSite=Strict``), repeated in every form as
the hidden field ``csrf`` (or the ``X-CSRF-Token`` header of a script's request). A write
whose two copies differ is refused before it reaches the API. Another site can make the
browser send the cookies but can neither read the value nor set it.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from strato.client import ApiError, CloudClient
from strato.dashboard.render import PREFIX, api_error

__all__ = ["CSRF_COOKIE", "PREFIX", "SESSION_COOKIE", "Dashboard", "Session",
           "clear_cookie", "csrf_ok", "csrf_value", "ensure_csrf", "flash_of", "form_data",
           "page", "redirect", "set_cookie"]

SESSION_COOKIE = "strato_session"
CSRF_COOKIE = "strato_csrf"
FLASH_COOKIE = "strato_flash"
PROJECT_COOKIE = "strato_project"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_FORM = 1024 * 1024  # a form (user data is at most 64 KiB after base64)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """How the dashboard reaches the API: a base URL and, in-process, the transport."""

    base_url: str
    transport: httpx.AsyncBaseTransport | None = None

    def client(self, token: str) -> CloudClient:
        return CloudClient(self.base_url, token, transport=self.transport)


@dataclass(slots=True)
class Session:
    """A logged-in user on one page: the API client with their token, who they are."""

    token: str
    client: CloudClient
    csrf: str
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: frozenset[str]
    projects: list[dict[str, Any]]
    flash: str | None = None
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def context(self) -> dict[str, Any]:
        """What every page's template sees about the session."""
        return {"session": self, "csrf": self.csrf, "flash": self.flash}


def set_cookie(response: Response, name: str, value: str, *, max_age: int | None = None,
               http_only: bool = True, same_site: str = "lax") -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, secure=True,
                        httponly=http_only, samesite=same_site)  # type: ignore[arg-type]


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, secure=True, httponly=True)


def redirect(path: str, *, flash: str | None = None) -> RedirectResponse:
    """A 303 to ``/dashboard<path>`` (a POST's answer: the browser GETs it)."""
    response = RedirectResponse(PREFIX + path, status_code=303)
    if flash:
        set_cookie(response, FLASH_COOKIE, quote(flash[:300]), max_age=60)
    return response


def csrf_value(request: Request) -> str:
    """The request's CSRF value, or a new one (to be set by :func:`ensure_csrf`)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    return value if len(value) == 43 else secrets.token_urlsafe(32)


def ensure_csrf(request: Request, response: Response, value: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != value:
        set_cookie(response, CSRF_COOKIE, value, same_site="strict")


async def form_data(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, every value of every field (parsed
    once per request: the CSRF check and the page both read it)."""
    parsed: dict[str, list[str]] | None = getattr(request.state, "form", None)
    if parsed is not None:
        return parsed
    body = await request.body()
    fields: dict[str, list[str]] = {}
    if len(body) <= _MAX_FORM:
        for key, value in parse_qsl(body.decode("utf-8", "replace"),
                                    keep_blank_values=True):
            fields.setdefault(key, []).append(value)
    request.state.form = fields
    return fields


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


Handler = Callable[[Request, Session], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page for logged-in users: no (or an ended) session goes to the login page; a
    write without the right CSRF value is refused with 403; an API refusal the page
    does not handle itself becomes the error page; the API client is closed after the
    page."""

    async def endpoint(request: Request) -> Response:
        dashboard: Dashboard = request.app.state.dashboard
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return _to_login(request, None)
        if request.method in _WRITES and not await _csrf_checked(request):
            return Response("The form was stale or forged (CSRF check failed); reload "
                            "the page and try again.", status_code=403,
                            media_type="text/plain")
        async with dashboard.client(token) as client:
            try:
                info, projects = await asyncio.gather(client.token_info(token),
                                                      client.my_projects())
            except ApiError as exc:
                if exc.status in (401, 403, 404):
                    return _to_login(request, "Your session has ended; log in again.")
                raise
            session = Session(
                token=token, client=client, csrf=csrf_value(request),
                user_id=info["user"]["id"], user_name=info["user"]["name"],
                project_id=(info.get("project") or {}).get("id", ""),
                project_name=(info.get("project") or {}).get("name", ""),
                roles=frozenset(r["name"] for r in info.get("roles", [])),
                projects=sorted(projects, key=lambda p: str(p.get("name"))),
                flash=flash_of(request))
            try:
                response = await handler(request, session)
            except ApiError as exc:
                response = api_error(session, exc)
        ensure_csrf(request, response, session.csrf)
        if session.flash is not None and request.cookies.get(FLASH_COOKIE):
            clear_cookie(response, FLASH_COOKIE)
        return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _csrf_checked(request: Request) -> bool:
    submitted = request.headers.get("x-csrf-token")
    if submitted is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        submitted = (await form_data(request)).get("csrf", [""])[0]
    return csrf_ok(request, submitted)


def flash_of(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    return unquote(raw)


def _to_login(request: Request, message: str | None) -> Response:
    nxt = request.url.path if request.method == "GET" else PREFIX + "/instances"
    if request.headers.get("x-requested-with") == "fetch":
        return Response("session ended", status_code=401, media_type="text/plain")
    response = RedirectResponse(f"{PREFIX}/login?next={quote(nxt)}", status_code=303)
    clear_cookie(response, SESSION_COOKIE)
    if message:
        set_cookie(response, FLASH_COOKIE, quote(message), max_age=60)
    return response
