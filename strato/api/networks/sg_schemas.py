"""``/networking/v2.0/security-groups`` and ``security-group-rules`` request bodies ->
validated values, with Neutron's words ("Invalid input for name. Reason: ...").

Neutron's attribute checks, not JSON schema: unknown attributes are refused
("Unrecognized attribute(s) 'x'"), strings are strings (name and description at most
255 characters), ports are integers (or digit strings, which Neutron converts) and
``tenant_id``/``project_id`` may name another project only for an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid
from strato.domain.ids import ProjectId
from strato.domain.security_groups import (
    RuleSpec,
    SecurityGroupDefaultAlreadyExists,
    is_default_name,
    validate_rule,
)

__all__ = ["GroupCreate", "GroupUpdate", "RuleCreate", "parse_group_create",
           "parse_group_update", "parse_rule_create"]

_MAX_NAME = 255
_GROUP_CREATE = frozenset({"name", "description", "tenant_id", "project_id", "stateful"})
_GROUP_UPDATE = frozenset({"name", "description", "stateful"})
_RULE_CREATE = frozenset({"security_group_id", "direction", "ethertype", "protocol",
                          "port_range_min", "port_range_max", "remote_ip_prefix",
                          "remote_group_id", "description", "tenant_id", "project_id"})


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupCreate:
    project_id: ProjectId
    name: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupUpdate:
    name: str | None
    description: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCreate:
    security_group_id: str
    spec: RuleSpec
    description: str


def _resource(body: Any, key: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise Invalid(f"Resource body required: '{key}' must be an object.")
    if len(body) != 1:
        extra = sorted(k for k in body if k != key)
        raise Invalid(f"Unrecognized attribute(s) '{', '.join(map(str, extra))}'")
    fields: dict[str, Any] = body[key]
    unknown = sorted(k for k in fields if k not in allowed)
    if unknown:
        raise Invalid(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    return fields


def _string(fields: dict[str, Any], name: str, *, required: bool = False,
            default: str | None = None) -> str | None:
    if name not in fields:
        if required:
            raise Invalid(f"Failed to parse request. Required attribute '{name}' not "
                          "specified")
        return default
    value = fields[name]
    if not isinstance(value, str):
        raise Invalid(f"Invalid input for {name}. Reason: '{value}' is not a valid string.")
    if len(value) > _MAX_NAME:
        raise Invalid(f"Invalid input for {name}. Reason: '{value}' exceeds maximum length "
                      f"of {_MAX_NAME}.")
    return value


def _optional_string(fields: dict[str, Any], name: str) -> str | None:
    """A string attribute where JSON null means "not given"."""
    if fields.get(name) is None:
        return None
    return _string(fields, name)


def _port(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise Invalid(f"Invalid value for port {value}")
    return value


def _stateful(fields: dict[str, Any]) -> None:
    if "stateful" in fields and fields["stateful"] is not True:
        raise Invalid("Invalid input for stateful. Reason: only stateful security groups "
                      "are supported.")


def _owner(fields: dict[str, Any], ctx: RequestContext) -> ProjectId:
    """The project the new resource belongs to: the caller's, or (admin only) the one
    ``tenant_id``/``project_id`` names."""
    tenant = _string(fields, "tenant_id")
    project = _string(fields, "project_id")
    if tenant is not None and project is not None and tenant != project:
        raise Invalid("Both tenant_id and project_id passed as attributes with different "
                      "values.")
    owner = project or tenant
    if not owner or owner == ctx.project_id:
        return ctx.project_id
    if not ctx.is_admin:
        raise Forbidden("Only an admin may create a resource for another project.")
    return ProjectId(owner)


def parse_group_create(body: Any, ctx: RequestContext) -> GroupCreate:
    """``{"security_group": {"name", "description", ...}}``; ``default`` is refused."""
    fields = _resource(body, "security_group", _GROUP_CREATE)
    _stateful(fields)
    name = _string(fields, "name", default="") or ""
    if is_default_name(name):
        raise SecurityGroupDefaultAlreadyExists()
    return GroupCreate(project_id=_owner(fields, ctx), name=name,
                       description=_string(fields, "description", default="") or "")


def parse_group_update(body: Any) -> GroupUpdate:
    """``{"security_group": {"name"?, "description"?}}``."""
    fields = _resource(body, "security_group", _GROUP_UPDATE)
    _stateful(fields)
    return GroupUpdate(name=_string(fields, "name"),
                       description=_string(fields, "description"))


def parse_rule_create(body: Any, ctx: RequestContext) -> RuleCreate:
    """``{"security_group_rule": {...}}`` checked by :func:`validate_rule`. The owner
    attributes are checked (admin only for another project) but the rule belongs to its
    group's project."""
    fields = _resource(body, "security_group_rule", _RULE_CREATE)
    group_id = _string(fields, "security_group_id", required=True) or ""
    direction = _string(fields, "direction", required=True) or ""
    _owner(fields, ctx)
    protocol = fields.get("protocol")
    if isinstance(protocol, int) and not isinstance(protocol, bool):
        protocol = str(protocol)
    elif protocol is not None and not isinstance(protocol, str):
        raise Invalid(f"Security group rule protocol {protocol} not supported.")
    spec = validate_rule(RuleSpec(
        direction=direction,
        ethertype=_optional_string(fields, "ethertype") or "IPv4",
        protocol=protocol,
        port_range_min=_port(fields, "port_range_min"),
        port_range_max=_port(fields, "port_range_max"),
        remote_ip_prefix=_optional_string(fields, "remote_ip_prefix"),
        remote_group_id=_optional_string(fields, "remote_group_id")))
    return RuleCreate(security_group_id=group_id, spec=spec,
                      description=_optional_string(fields, "description") or "")
