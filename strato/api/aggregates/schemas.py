"""``os-aggregates`` request bodies (microversion 2.1), as Nova's JSON schemas
(``nova/api/openstack/compute/schemas/aggregates.py``): unknown keys and wrong types
are a 400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from strato.api.bodies import parse_model
from strato.api.fields import Name
from strato.domain.errors import Invalid
from strato.domain.ids import HostName

__all__ = ["ACTIONS", "AggregateUpdate", "HostAction", "NewAggregate", "parse_action",
           "parse_create", "parse_host", "parse_metadata", "parse_update"]

_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_zone(value: str) -> str:
    if value.strip() != value:
        raise ValueError("Leading or trailing whitespace is not allowed")
    if ":" in value:
        raise ValueError("An availability zone name cannot contain ':'")
    if not value.isprintable():
        raise ValueError("Control characters are not allowed")
    return value


# Nova's az_name: 1 to 255 characters, no ':' (a server create names "zone:host").
Zone = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_check_zone)]
# Nova's metadata keys (parameter_types.metadata) and values (0 to 255 characters).
MetaKey = Annotated[str, Field(pattern=r"^[a-zA-Z0-9\-_:. ]{1,255}$")]
MetaValue = Annotated[str, Field(max_length=255)]
_HostName = Annotated[str, Field(min_length=1, max_length=255)]


def _reject_null(data: Any, *keys: str) -> Any:
    # Optional, but null is no value for these keys.
    if isinstance(data, dict):
        for key in keys:
            if key in data and data[key] is None:
                raise ValueError(f"{key}: None is not of type 'string'")
    return data


class _Create(BaseModel):
    model_config = _Strict

    name: Name
    availability_zone: Zone | None = None


class _CreateBody(BaseModel):
    model_config = _Strict

    aggregate: _Create


class _Update(BaseModel):
    model_config = _Strict

    name: Name | None = None
    availability_zone: Zone | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_null_name(cls, data: Any) -> Any:
        return _reject_null(data, "name")

    @model_validator(mode="after")
    def _some_field(self) -> _Update:
        if not self.model_fields_set:
            raise ValueError("{} is not valid under any of the given schemas")
        return self


class _UpdateBody(BaseModel):
    model_config = _Strict

    aggregate: _Update


class _HostArg(BaseModel):
    model_config = _Strict

    host: _HostName


class _Metadata(BaseModel):
    model_config = _Strict

    metadata: dict[MetaKey, MetaValue | None]


class _HostBody(BaseModel):
    model_config = _Strict

    add_host: _HostArg


class _RemoveHostBody(BaseModel):
    model_config = _Strict

    remove_host: _HostArg


class _MetadataBody(BaseModel):
    model_config = _Strict

    set_metadata: _Metadata


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAggregate:
    name: str
    availability_zone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateUpdate:
    """A validated ``PUT``: ``remove_zone`` when ``availability_zone`` is null."""

    name: str | None = None
    availability_zone: str | None = None
    remove_zone: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HostAction:
    """``add_host`` or ``remove_host`` and its host."""

    action: str
    host: HostName


# The actions of ``POST /os-aggregates/{id}/action``.
ACTIONS = ("add_host", "remove_host", "set_metadata")


def parse_create(body: Any) -> NewAggregate:
    """``{"aggregate": {"name": ..., "availability_zone"?: ...}}``."""
    aggregate = parse_model(_CreateBody, body).aggregate
    return NewAggregate(name=aggregate.name, availability_zone=aggregate.availability_zone)


def parse_update(body: Any) -> AggregateUpdate:
    """``{"aggregate": {"name"?: ..., "availability_zone"?: ...}}``, at least one."""
    aggregate = parse_model(_UpdateBody, body).aggregate
    remove = ("availability_zone" in aggregate.model_fields_set
              and aggregate.availability_zone is None)
    return AggregateUpdate(name=aggregate.name, availability_zone=aggregate.availability_zone,
                           remove_zone=remove)


def parse_action(body: Any) -> tuple[str, Any]:
    """The one action a body names, and its argument; 400 for none, several or an
    unknown one."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    if len(body) != 1:
        raise Invalid("Malformed request body: name exactly one action of "
                      f"{', '.join(ACTIONS)}.")
    ((name, argument),) = body.items()
    if name not in ACTIONS:
        raise Invalid(f"There is no such action: {name}")
    return name, argument


def parse_host(name: str, body: Any) -> HostAction:
    """The body of ``add_host`` / ``remove_host``: ``{name: {"host": ...}}``."""
    if name == "add_host":
        host = parse_model(_HostBody, body).add_host.host
    else:
        host = parse_model(_RemoveHostBody, body).remove_host.host
    return HostAction(action=name, host=HostName(host))


def parse_metadata(body: Any) -> dict[str, str | None]:
    """The body of ``set_metadata``: ``{"set_metadata": {"metadata": {...}}}``."""
    return dict(parse_model(_MetadataBody, body).set_metadata.metadata)
