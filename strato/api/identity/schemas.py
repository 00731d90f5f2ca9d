"""``POST /v3/auth/tokens`` bodies -> :class:`~strato.identity.service.AuthRequest`."""

from __future__ import annotations

from typing import Any

from strato.domain.errors import Invalid
from strato.identity.service import AuthRequest, NameRef

__all__ = ["auth_request"]

_METHODS = frozenset({"password", "token"})


def _object(parent: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"'{key}' is a required property and must be an object")
    return value


def _text(parent: dict[str, Any], key: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"'{key}' must be a string")
    return value


def _ref(body: dict[str, Any], what: str) -> NameRef:
    """``{"id": ...}`` or ``{"name": ..., "domain": {"id" | "name": ...}}``."""
    ref = NameRef(id=_text(body, "id"), name=_text(body, "name"),
                  domain=_ref(_object(body, "domain"), "domain")
                  if "domain" in body else None)
    if not ref.id and not (ref.name and (ref.domain or what == "domain")):
        raise Invalid(f"{what} needs an id, or a name and a domain")
    return ref


def auth_request(body: Any) -> AuthRequest:
    """The request a token body asks for; ``Invalid`` (400) when malformed."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object")
    auth = _object(body, "auth")
    identity = _object(auth, "identity")
    methods = identity.get("methods")
    if (not isinstance(methods, list) or not methods
            or not all(isinstance(m, str) for m in methods)):
        raise Invalid("'methods' must be a non-empty list of strings")
    if not set(methods) <= _METHODS:
        raise Invalid(f"Unsupported authentication method: {', '.join(methods)}")
    user, password, token = None, None, None
    if "password" in methods:
        user_body = _object(_object(identity, "password"), "user")
        user, password = _ref(user_body, "user"), _text(user_body, "password")
    if "token" in methods:
        token = _text(_object(identity, "token"), "id")
    return AuthRequest(methods=tuple(methods), user=user, password=password, token=token,
                       project=_scope(auth))


def _scope(auth: dict[str, Any]) -> NameRef | None:
    scope = auth.get("scope")
    if scope is None or scope == "unscoped":
        return None
    if not isinstance(scope, dict):
        raise Invalid("'scope' must be an object")
    if "project" not in scope:
        raise Invalid("Only project scope is supported")
    return _ref(_object(scope, "project"), "project")
