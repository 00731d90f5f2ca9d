"""Domain errors -> HTTP status and fault body: the one table, and its handlers.

Every error response of the Compute API has Nova's shape::

    {"badRequest": {"code": 400, "message": "..."}}

and every error of the Image API (under ``/image``, and its ``/v2`` alias) has Glance's,
which is webob's JSON error body::

    {"code": "400 Bad Request", "title": "Bad Request", "message": "..."}

and every error of the Network API (under ``/networking``) has Neutron's::

    {"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}

and every error of the Identity API (under ``/identity``) has Keystone's::

    {"error": {"code": 403, "title": "Forbidden", "message": "..."}}

Neutron's ``type`` is its exception class name. The network domain raises subclasses of
the one error tree named after Neutron's exceptions (``NetworkNotFound(NotFound)``,
``SecurityGroupInUse(Conflict)``, see :data:`_NEUTRON_NAMED`), so :func:`neutron_type`
shows such a class's name; any other error gets its class's generic type
(``InvalidInput``, ``HTTPForbidden``, ``OverQuota``, ...). On the Network API
``OverQuota`` is a 409, as Neutron answers it.

The fault names are Nova's (``nova/api/openstack/wsgi.py`` ``Fault._fault_names``). A
domain error's status is found by walking ``type(exc).__mro__`` through :data:`STATUS`,
so a subclass (``InvalidReference``) inherits its parent's status (``Invalid`` -> 400)
unless the table names it. Conditions that only exist in HTTP (no token, wrong method,
unsupported microversion) raise :class:`ApiFault` with an explicit status instead.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from strato.domain.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    NoValidHost,
    OverQuota,
    StratoError,
    Unavailable,
)
from strato.domain.networks import (
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    MacAddressInUse,
    NetworkInUse,
    NetworkNotFound,
    PolicyNotAuthorized,
    PortNotFound,
    SubnetInUse,
    SubnetNotFound,
)
from strato.domain.security_groups import (
    SecurityGroupCannotRemoveDefault,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupRuleExists,
    SecurityGroupRuleNotFound,
)

__all__ = ["RETRY_AFTER_UNAVAILABLE", "STATUS", "ApiFault", "fault_for", "fault_response",
           "install_handlers", "is_identity_path", "is_image_path", "is_network_path",
           "neutron_type", "strato_error_response", "unexpected_error_response"]

logger = logging.getLogger(__name__)

STATUS: dict[type[StratoError], tuple[int, str]] = {
    NotFound: (404, "itemNotFound"),
    Conflict: (409, "conflictingRequest"),
    Invalid: (400, "badRequest"),
    Forbidden: (403, "forbidden"),
    # Nova answers a quota exceeded by a request as a plain 403 with Retry-After: 0.
    OverQuota: (403, "forbidden"),
    # Scheduling is asynchronous, so NoValidHost never reaches the API from a request;
    # if a future synchronous path raises it, it is the request that cannot be placed.
    NoValidHost: (400, "badRequest"),
    Unavailable: (503, "serviceUnavailable"),
}
_DEFAULT = (500, "computeFault")

# Fault names by status, for HTTP-level failures (Nova's table; others are computeFault).
_NAMES_BY_STATUS: dict[int, str] = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
    429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable",
}


class ApiFault(Exception):
    """A failure that exists only in HTTP (401, 405, 406, 415): carries its status."""

    def __init__(self, status: int, message: str, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def fault_for(exc: StratoError) -> tuple[int, str]:
    """The HTTP status and Nova fault name for a domain error."""
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), _DEFAULT)


def is_image_path(path: str) -> bool:
    """Whether ``path`` belongs to the Image API (``/image...`` or its ``/v2`` alias)."""
    return path == "/image" or path.startswith(("/image/", "/v2/")) or path == "/v2"


def is_identity_path(path: str) -> bool:
    """Whether ``path`` belongs to the Identity API (``/identity...``)."""
    return path == "/identity" or path.startswith("/identity/")


def is_network_path(path: str) -> bool:
    """Whether ``path`` belongs to the Network API (``/networking...``)."""
    return path == "/networking" or path.startswith("/networking/")


# Neutron's type for HTTP-level failures (webob's exception names).
_NEUTRON_BY_STATUS: dict[int, str] = {
    400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
    404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
    413: "HTTPRequestEntityTooLarge", 415: "HTTPUnsupportedMediaType",
    500: "HTTPInternalServerError", 503: "HTTPServiceUnavailable",
}

# Domain errors named after Neutron's exceptions: their class name is the type.
_NEUTRON_NAMED: frozenset[type[StratoError]] = frozenset({
    NetworkNotFound, SubnetNotFound, PortNotFound, SecurityGroupNotFound,
    SecurityGroupRuleNotFound, SecurityGroupRuleExists, SecurityGroupInUse,
    SecurityGroupCannotRemoveDefault, IpAddressGenerationFailure,
    IpAddressAlreadyAllocated, MacAddressInUse, NetworkInUse, SubnetInUse,
    PolicyNotAuthorized,
})
# The type of any other domain error, by class; first match wins.
_NEUTRON_GENERIC: tuple[tuple[type[StratoError], str], ...] = (
    (OverQuota, "OverQuota"),
    (Invalid, "InvalidInput"),
    (Forbidden, "HTTPForbidden"),
    (NotFound, "HTTPNotFound"),
    (Conflict, "HTTPConflict"),
    (Unavailable, "HTTPServiceUnavailable"),
)


def neutron_type(exc: StratoError) -> str:
    """The NeutronError ``type`` of a domain error (see the module docstring)."""
    if type(exc) in _NEUTRON_NAMED:
        return type(exc).__name__
    return next((name for cls, name in _NEUTRON_GENERIC if isinstance(exc, cls)),
                "HTTPInternalServerError")


def fault_response(status: int, message: str, *, name: str | None = None, path: str = "",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error response for ``path``: Neutron's body on the Network API, Keystone's
    on the Identity API, Glance's on the Image API, else Nova's
    (``name`` defaults to Nova's fault name for ``status``)."""
    title = HTTPStatus(status).phrase if status in _HTTP_STATUSES else "Error"
    if is_network_path(path):
        body: dict[str, object] = {"NeutronError": {
            "type": _NEUTRON_BY_STATUS.get(status, "HTTPError"), "message": message,
            "detail": ""}}
    elif is_identity_path(path):
        body = {"error": {"code": status, "title": title, "message": message}}
    elif is_image_path(path):
        body = {"code": f"{status} {title}", "title": title,
                                   "message": message}
    else:
        body = {name or _NAMES_BY_STATUS.get(status, "computeFault"):
                {"code": status, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_STATUSES = frozenset(s.value for s in HTTPStatus)


def unexpected_error_response(path: str = "") -> JSONResponse:
    """The response for a bug: no details leak to the client (they are in the log)."""
    return fault_response(500, "Unexpected API Error. Please report this at the strato "
                               "bug tracker and attach the API log if possible.", path=path)


# Seconds a client should wait before retrying a 503 (the database or a service is
# restarting): Retry-After on every Unavailable answer.
RETRY_AFTER_UNAVAILABLE = 5


def strato_error_response(exc: StratoError, method: str, path: str) -> JSONResponse:
    """The response for a domain error raised by a ``method`` request to ``path``, in
    the fault format of the API it belongs to (middleware uses it too: errors raised
    outside the routes never reach the exception handlers)."""
    status, name = fault_for(exc)
    if status >= 500:
        # A dependency failed (503) or a service raised a bare StratoError (500): the
        # client sees the message; the log keeps which request hit it, and why.
        logger.warning("%s %s failed: %s: %s%s", method, path, type(exc).__name__, exc,
                       f" ({exc.details})" if exc.details else "")
    headers = _retry_headers(exc, path)
    if is_network_path(path):
        status = 409 if isinstance(exc, OverQuota) else status
        body = {"NeutronError": {"type": neutron_type(exc), "message": exc.message,
                                 "detail": ""}}
        return JSONResponse(body, status_code=status, headers=headers)
    return fault_response(status, exc.message, name=name, path=path, headers=headers)


def _retry_headers(exc: StratoError, path: str) -> dict[str, str] | None:
    if isinstance(exc, Unavailable):
        return {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
    if isinstance(exc, OverQuota) and not is_image_path(path) and not is_network_path(path):
        return {"Retry-After": "0"}
    return None


async def _on_strato_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StratoError)
    return strato_error_response(exc, request.method, request.url.path)


async def _on_api_fault(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiFault)
    return fault_response(exc.status, exc.message, headers=exc.headers,
                          path=request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    # Starlette raises these for unknown routes (404) and wrong methods (405).
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "The resource could not be found.",
                405: "The method specified is not allowed for this resource."}
    message = messages.get(exc.status_code, str(exc.detail))
    return fault_response(exc.status_code, message, headers=dict(exc.headers or {}),
                          path=request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    # Routes parse their own bodies, so this only fires if a route declares typed
    # parameters; it must still answer in Nova's shape, never FastAPI's 422.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ()))
    return fault_response(400, f"Invalid input for field/attribute {field}. "
                               f"{first.get('msg', 'invalid')}", path=request.url.path)


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    # The client went away mid-body (an aborted upload): expected, not a bug, and
    # nobody reads this answer; the route has already cleaned up.
    logger.info("%s %s: client disconnected before the body was complete",
                request.method, request.url.path)
    return fault_response(400, "The client closed the connection before the request body "
                               "was complete.", path=request.url.path)


async def _on_malformed_json(request: Request, exc: Exception) -> Response:
    return fault_response(400, "Malformed request body", path=request.url.path)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every expected failure into a Nova fault.

    The catch-all for unexpected exceptions lives in the request-id middleware, because
    Starlette runs handlers for ``Exception`` outside all user middleware (the response
    would lose its request id headers).
    """
    app.add_exception_handler(StratoError, _on_strato_error)
    app.add_exception_handler(ApiFault, _on_api_fault)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(json.JSONDecodeError, _on_malformed_json)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
