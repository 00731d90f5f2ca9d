"""The request body cap: one ASGI middleware in front of every route.

Nova refuses any body larger than ``osapi_max_request_body_size`` (112 KiB) before a
route sees it; strato does the same for every route of every API and the dashboard,
with two exceptions: image data (``PUT .../images/{id}/file`` of the Image API, and the
dashboard's upload that streams into it) may be as large as ``api.max_upload_body_size``,
and the dashboard's HTML forms as ``api.max_form_body_size`` (a launch form carries up to
64 KiB of user data, which URL-encoding may triple).

A body whose ``Content-Length`` is over the limit is answered 413 at once: the route never
runs and not a byte of the body is read. A body without one (chunked) is counted as it
streams through; the message that crosses the limit is not handed on: reading it raises
:class:`BodyTooLarge` in the route (an ``Invalid``, so an image upload falls back to
``queued`` as for refused data, and nothing is half-made), whatever the route answers is
dropped, and the client gets the 413. Nothing is buffered here: image data keeps
streaming.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strato.api.errors import fault_response
from strato.domain.errors import Invalid

__all__ = ["BodyLimitMiddleware", "BodyLimits", "BodyTooLarge", "limit_for"]

logger = logging.getLogger(__name__)

# Image data: the Image API (and its /v2 alias) and the dashboard's upload page.
_UPLOAD_PATHS = re.compile(r"/(?:image/v2|v2|dashboard)/images/[^/]+/file")


class BodyTooLarge(Invalid):
    """Raised to the route reading a body past its cap (the client sees a 413)."""


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The caps, in bytes: ``default`` for every API route, ``form`` for the dashboard's
    forms, ``upload`` for image data."""

    default: int
    form: int
    upload: int


def limit_for(limits: BodyLimits, method: str, path: str) -> int:
    """The body cap of one request."""
    if method == "PUT" and _UPLOAD_PATHS.fullmatch(path):
        return limits.upload
    if _is_dashboard(path):
        return limits.form
    return limits.default


def _is_dashboard(path: str) -> bool:
    return path == "/dashboard" or path.startswith("/dashboard/")


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None or not value.isdigit():
        return None  # the server refuses a malformed one before we run
    return int(value)


def _too_large(path: str, limit: int) -> JSONResponse:
    message = f"Request is too large: the body may have at most {limit} bytes."
    if _is_dashboard(path):
        # The dashboard's scripts read {"error": ...} (as its own refusals).
        return JSONResponse({"error": message}, status_code=413)
    return fault_response(413, message, path=path)


class BodyLimitMiddleware:
    """Caps request bodies (see the module docstring); answers 413 in the format of the
    API the path belongs to."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = limit_for(self.limits, scope["method"], path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _too_large(path, limit)(scope, receive, send)
            return
        await _Capped(self.app, limit).run(scope, receive, send)


class _Capped:
    """One request whose body is counted as the route reads it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if not self.exceeded:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                self.received += len(message.get("body", b""))
                if self.received <= self.limit:
                    return message
                self.exceeded = True
            raise BodyTooLarge(f"The request body is larger than {self.limit} bytes.")

        async def guarded_send(message: Message) -> None:
            if self.exceeded and not self.started:
                return  # the route's answer to the cut body: the client gets the 413
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not self.exceeded or self.started:
                raise
            logger.debug("%s %s: the route failed on its cut body", scope["method"],
                         scope["path"], exc_info=True)
        if self.exceeded and not self.started:
            logger.info("%s %s: body over %d bytes refused", scope["method"], scope["path"],
                        self.limit)
            await _too_large(scope["path"], self.limit)(scope, receive, send)
