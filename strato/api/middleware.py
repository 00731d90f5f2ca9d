"""ASGI middleware: request ids, authentication, microversions.

Order, outermost first: :class:`RequestIdMiddleware` (so even a 401 or a crash carries
the request id), :class:`AuthMiddleware`, :class:`MicroversionMiddleware`. They are plain
ASGI classes rather than ``BaseHTTPMiddleware`` so request bodies stream through
untouched (image uploads) and the context variables they set reach the route.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import cast
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strato.api.auth import AuthBackend, StaticTokenAuth
from strato.api.bodies import nul_message
from strato.api.errors import (
    ApiFault,
    fault_response,
    strato_error_response,
    unexpected_error_response,
)
from strato.api.versions import requested_version, version_headers
from strato.domain.context import RequestContext
from strato.domain.errors import StratoError
from strato.domain.ids import RequestId, new_request_id
from strato.log import bind_context

# The auth backends live in strato.api.auth; re-exported here, where callers look first.
__all__ = ["AuthBackend", "AuthMiddleware", "MicroversionMiddleware", "RequestIdMiddleware",
           "StaticTokenAuth", "is_compute_path", "nul_in_url"]

logger = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The version documents answer without a token, as in Nova (clients discover first).
# Version documents: clients read them before they have a token.
# The identity routes are public too: issuing a token needs none, and the others answer
# a missing token in Keystone's format themselves.
_PUBLIC_PATHS = frozenset({"/", "/v2.1", "/v2.1/", "/image", "/image/", "/image/versions",
                           "/networking", "/networking/", "/identity", "/identity/",
                           "/identity/v3", "/identity/v3/", "/identity/v3/auth/tokens",
                           "/identity/v3/auth/catalog", "/identity/v3/auth/projects",
                           "/v2", "/v2/"})


def is_compute_path(path: str) -> bool:
    """Whether ``path`` belongs to the Compute API (the rest is the Image API)."""
    return path in ("/", "/v2", "/v2/", "/v2.1") or path.startswith("/v2.1/")


def _is_dashboard(path: str) -> bool:
    """The dashboard's pages log their users in themselves (a session cookie) and call
    the API with those users' tokens."""
    return path == "/dashboard" or path.startswith("/dashboard/")


def _state(scope: Scope) -> dict[str, object]:
    # Starlette's request.state reads scope["state"].
    state: dict[str, object] = scope.setdefault("state", {})
    return state


class RequestIdMiddleware:
    """Gives every request a ``req-<uuid>`` id, returned as ``x-openstack-request-id``
    (and ``x-compute-request-id`` on compute routes); accepts a caller's
    ``X-OpenStack-Request-ID`` as the global request id. Also the last line of defence:
    an unexpected exception is logged and answered as a 500 ``computeFault``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        incoming = Headers(scope=scope).get("x-openstack-request-id", "")
        # An anonymous context holding just the ids; AuthMiddleware adds the identity.
        _state(scope)["ctx"] = RequestContext(
            request_id=request_id,
            global_request_id=RequestId(incoming) if _REQUEST_ID_RE.fullmatch(incoming) else None)
        extra = {"x-openstack-request-id": request_id}
        if is_compute_path(scope["path"]):
            extra["x-compute-request-id"] = request_id
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for key, value in extra.items():
                    headers[key] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception:  # the API edge: a bug must still get a Nova-shaped answer
            logger.exception("unexpected error in %s %s", scope["method"], scope["path"])
            if started:
                raise
            await unexpected_error_response(scope["path"])(scope, receive, send_with_ids)


class AuthMiddleware:
    """Builds the :class:`RequestContext` from ``X-Auth-Token`` (401 when missing or
    unknown, except on the version documents; 503 when the token cannot be checked now),
    stores it as ``request.state.ctx`` and binds it for logging for the rest of the
    request. First of all it refuses a URL holding a NUL character: 404 in the path
    (nothing can live there), 400 in the query."""

    def __init__(self, app: ASGIApp, backend: AuthBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        ids = cast(RequestContext, state["ctx"])
        nul = nul_in_url(scope)
        if nul == "path":
            # No id or name holds one, so nothing lives at such a path.
            await fault_response(404, "The resource could not be found.",
                                 path=scope["path"])(scope, receive, send)
            return
        if nul is not None:
            await fault_response(400, nul_message(nul), path=scope["path"])(
                scope, receive, send)
            return
        try:
            ctx = await self._authenticate(scope)
        except StratoError as exc:
            # The token check reads the database: while it is down, a 503 (this runs
            # outside the routes, so no exception handler would answer it).
            await strato_error_response(exc, scope["method"], scope["path"])(
                scope, receive, send)
            return
        if ctx is None and scope["path"] not in _PUBLIC_PATHS and not _is_dashboard(
                scope["path"]):
            response = fault_response(401, "The request you have made requires "
                                           "authentication.", path=scope["path"])
            await response(scope, receive, send)
            return
        ctx = replace(ctx or ids, request_id=ids.request_id,
                      global_request_id=ids.global_request_id)
        state["ctx"] = ctx
        with bind_context(ctx):
            await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> RequestContext | None:
        token = Headers(scope=scope).get("x-auth-token", "")
        return await self.backend.authenticate(token) if token else None


def nul_in_url(scope: Scope) -> str | None:
    """The part of the URL (``path`` or a query parameter's name) that holds a NUL
    character once decoded, if any: no id, name or filter may hold one (see
    :func:`strato.api.bodies.refuse_nul`)."""
    if "\x00" in scope["path"]:
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    return next((key or "query" for key, value in parse_qsl(query, keep_blank_values=True)
                 if "\x00" in key or "\x00" in value), None)


class MicroversionMiddleware:
    """On compute routes: checks the requested microversion (400/406 as Nova) and names
    the answering version in the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_compute_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            version = requested_version(Headers(scope=scope))
        except ApiFault as fault:
            await fault_response(fault.status, fault.message)(scope, receive, send)
            return
        _state(scope)["api_version"] = version
        extra = version_headers(version)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in extra.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_version)
