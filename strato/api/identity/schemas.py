"""Identity API bodies -> domain objects: ``POST /v3/auth/tokens`` ->
:class:`~strato.identity.service.AuthRequest`, and the administration bodies (domains,
projects, users, roles) -> :mod:`strato.domain.identity` objects or changed fields."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails

from strato.domain.errors import Invalid
from strato.domain.identity import (
    DEFAULT_DOMAIN_ID,
    Domain,
    DomainId,
    Project,
    Role,
    RoleId,
    User,
)
from strato.domain.ids import ProjectId, UserId
from strato.identity.service import AuthRequest, NameRef

__all__ = ["auth_request", "domain_create", "domain_update", "flag", "password_change",
           "project_create", "project_update", "role_create", "role_update", "user_create",
           "user_update"]

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


def auth_request(body: Any, *, source: str | None = None) -> AuthRequest:
    """The request a token body asks for, sent from the address ``source``; ``Invalid``
    (400) when malformed."""
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
                       project=_scope(auth), source=source)


def _scope(auth: dict[str, Any]) -> NameRef | None:
    scope = auth.get("scope")
    if scope is None or scope == "unscoped":
        return None
    if not isinstance(scope, dict):
        raise Invalid("'scope' must be an object")
    if "project" not in scope:
        raise Invalid("Only project scope is supported")
    return _ref(_object(scope, "project"), "project")


# ---- administration bodies -------------------------------------------------------------
#
# Keystone's JSON schemas (keystone/*/schema.py) as strict pydantic models: unknown
# properties and ill-typed values are a 400 naming the field, in Keystone's words.
# ``options`` (resource options) is accepted only empty: the clients send ``{}``.


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError(f"{value!r} does not match '[\\S]+'")
    return value


def _no_options(value: dict[str, Any]) -> dict[str, Any]:
    if value:
        raise ValueError("resource options are not supported")
    return value


# Keystone: domain and project names up to 64 characters, user and role names 255.
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=64),
                      AfterValidator(_not_blank)]
LongName = Annotated[str, StringConstraints(min_length=1, max_length=255),
                     AfterValidator(_not_blank)]
IdRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Password = Annotated[str, StringConstraints(max_length=4096)]
Options = Annotated[dict[str, Any], AfterValidator(_no_options)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _DomainCreate(_Body):
    name: ShortName
    description: str | None = None
    enabled: bool = True
    options: Options = Field(default_factory=dict)


class _DomainUpdate(_DomainCreate):
    name: ShortName = ""


class _ProjectCreate(_Body):
    name: ShortName
    description: str | None = None
    enabled: bool = True
    domain_id: IdRef | None = None
    parent_id: IdRef | None = None
    is_domain: bool = False
    options: Options = Field(default_factory=dict)


class _ProjectUpdate(_Body):
    name: ShortName = ""
    description: str | None = None
    enabled: bool = True
    domain_id: IdRef | None = None
    options: Options = Field(default_factory=dict)


class _UserCreate(_Body):
    # Keystone's user schemas take additional properties (``email``...): the user's extra.
    model_config = ConfigDict(extra="allow", strict=True)

    name: LongName
    password: Password | None = None
    default_project_id: IdRef | None = None
    domain_id: IdRef | None = None
    enabled: bool = True
    description: str | None = None
    options: Options = Field(default_factory=dict)


class _UserUpdate(_UserCreate):
    name: LongName = ""


class _PasswordChange(_Body):
    password: Password
    original_password: Password


class _RoleCreate(_Body):
    name: LongName
    domain_id: IdRef | None = None
    options: Options = Field(default_factory=dict)


class _RoleUpdate(_RoleCreate):
    name: LongName = ""


M = TypeVar("M", bound=_Body)


def _describe(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"'{field}' is a required property"
    if error["type"] == "extra_forbidden":
        return f"Additional properties are not allowed ('{field}' was unexpected)"
    return f"Invalid input for field '{field}': {error['msg'].removeprefix('Value error, ')}"


def _parse(model: type[M], body: Any, key: str) -> M:
    """``{key: {...}}`` validated into ``model``; ``Invalid`` naming the first bad field."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise Invalid(f"'{key}' is a required property and must be an object")
    try:
        return model.model_validate(body[key])
    except ValidationError as exc:
        raise Invalid(_describe(exc.errors()[0])) from None


def _changes(model: _Body, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH body sets (at least one), descriptions ``null`` -> empty."""
    given = model.model_fields_set
    if not given:
        raise Invalid("The request body must change at least one property")
    changes = {name: getattr(model, name) for name in given
               if name != "options" and name not in skip}
    if changes.get("description", "") is None:
        changes["description"] = ""
    return changes


def _new_id() -> str:
    return uuid.uuid4().hex


def domain_create(body: Any) -> Domain:
    """``POST /v3/domains``."""
    fields = _parse(_DomainCreate, body, "domain")
    return Domain(id=DomainId(_new_id()), name=fields.name,
                  description=fields.description or "", enabled=fields.enabled)


def domain_update(body: Any) -> dict[str, Any]:
    """``PATCH /v3/domains/{id}``: the changed fields."""
    return _changes(_parse(_DomainUpdate, body, "domain"))


def project_create(body: Any) -> Project:
    """``POST /v3/projects``: in the default domain unless one is named. A parent may
    only be the project's domain: strato has no project hierarchy."""
    fields = _parse(_ProjectCreate, body, "project")
    if fields.is_domain:
        raise Invalid("Invalid input for field 'is_domain': projects acting as domains "
                      "are not supported")
    domain_id = fields.domain_id or fields.parent_id or DEFAULT_DOMAIN_ID
    if fields.parent_id is not None and fields.parent_id != domain_id:
        raise Invalid("Invalid input for field 'parent_id': project hierarchies are not "
                      "supported, the parent must be the project's domain")
    return Project(id=ProjectId(_new_id()), name=fields.name,
                   description=fields.description or "", enabled=fields.enabled,
                   domain_id=DomainId(domain_id))


def project_update(body: Any) -> dict[str, Any]:
    """``PATCH /v3/projects/{id}``: the changed fields (``domain_id`` only unchanged)."""
    return _changes(_parse(_ProjectUpdate, body, "project"))


# Read-only or assigned by the server: not kept from a user body.
_NOT_EXTRA = frozenset({"id", "links", "password_expires_at"})


def _user_extra(fields: _UserCreate) -> dict[str, Any]:
    """The properties a user body gives beyond Keystone's own, ``description`` (which
    Keystone keeps in the extra too) among them."""
    extra = {k: v for k, v in (fields.model_extra or {}).items() if k not in _NOT_EXTRA}
    if "description" in fields.model_fields_set:
        extra["description"] = fields.description
    return extra


def user_create(body: Any) -> tuple[User, str | None]:
    """``POST /v3/users``: the user (in the default domain unless one is named) and
    its password (``None``: no password login)."""
    fields = _parse(_UserCreate, body, "user")
    user = User(id=UserId(_new_id()), name=fields.name, enabled=fields.enabled,
                default_project_id=ProjectId(fields.default_project_id)
                if fields.default_project_id else None,
                domain_id=DomainId(fields.domain_id or DEFAULT_DOMAIN_ID),
                extra=_user_extra(fields))
    return user, fields.password


def user_update(body: Any) -> dict[str, Any]:
    """``PATCH /v3/users/{id}``: the changed fields, ``password`` among them, and
    ``extra``: the extra properties to set (merged into the user's)."""
    fields = _parse(_UserUpdate, body, "user")
    extra = _user_extra(fields)
    if not fields.model_fields_set and not extra:
        raise Invalid("The request body must change at least one property")
    changes = {name: getattr(fields, name) for name in fields.model_fields_set
               if name in _UserUpdate.model_fields and name not in ("options", "description")}
    if extra:
        changes["extra"] = extra
    return changes


def password_change(body: Any) -> tuple[str, str]:
    """``POST /v3/users/{id}/password``: (original password, new password)."""
    fields = _parse(_PasswordChange, body, "user")
    return fields.original_password, fields.password


def _global_role(fields: _RoleCreate) -> None:
    if fields.domain_id is not None:
        raise Invalid("Invalid input for field 'domain_id': domain-specific roles are not "
                      "supported")


def role_create(body: Any) -> Role:
    """``POST /v3/roles``: a global role (no domain-specific roles)."""
    fields = _parse(_RoleCreate, body, "role")
    _global_role(fields)
    return Role(id=RoleId(_new_id()), name=fields.name)


def role_update(body: Any) -> dict[str, Any]:
    """``PATCH /v3/roles/{id}``: the changed fields."""
    fields = _parse(_RoleUpdate, body, "role")
    _global_role(fields)
    return _changes(fields, skip=frozenset({"domain_id"}))


# ---- query strings ---------------------------------------------------------------------

_FALSE = frozenset({"0", "false", "no", "off"})


def flag(value: str | None) -> bool | None:
    """A boolean filter as Keystone reads it: absent -> ``None``; ``0``, ``false``,
    ``no`` or ``off`` (any case) -> ``False``; anything else, even empty -> ``True``."""
    if value is None:
        return None
    return value.lower() not in _FALSE
