"""``PUT /v2.1/servers/{id}``: rename a server and set its access IPs (microversion 2.1).

Nova's update schema at 2.1: a ``server`` object with ``name`` (as at create),
``accessIPv4`` (an IPv4 address), ``accessIPv6`` (an IPv6 one) and ``OS-DCF:diskConfig``
(accepted, and ignored as at create: strato's disks are always ``MANUAL``), each
optional, nothing else. As in Nova (``compute.API.update_instance``), the update only
writes the instance's row: it checks neither the lock nor the state, so a locked or
building server may be renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from strato.api.bodies import parse_model
from strato.api.deps import ApiDeps
from strato.api.fields import Name
from strato.api.servers.schemas import _check_ip
from strato.api.servers.service import get_server
from strato.db.ports import ANY_TASK_STATE
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.instances import Instance, InstanceChanges

__all__ = ["ServerUpdate", "parse_update", "update_server"]

_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


class _UpdateServer(BaseModel):
    """The ``server`` object; a present field must have a value (``null``, or an empty
    access IP, is a 400, as in Nova's schema)."""

    model_config = _Strict

    name: Name | None = None
    access_ip_v4: Annotated[str, AfterValidator(_check_ip(4))] | None = Field(
        None, alias="accessIPv4")
    access_ip_v6: Annotated[str, AfterValidator(_check_ip(6))] | None = Field(
        None, alias="accessIPv6")
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")

    @field_validator("name", "access_ip_v4", "access_ip_v6", "disk_config", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        # Runs only for the keys the body has (defaults are not validated).
        if value is None:
            raise ValueError("None is not of type 'string'")
        return value

    @field_validator("access_ip_v4", "access_ip_v6")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("'' is not a valid IP address")
        return value


class _UpdateBody(BaseModel):
    model_config = _Strict

    server: _UpdateServer


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerUpdate:
    """What an update body sets; ``None`` leaves the field as it is."""

    name: str | None = None
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None


def parse_update(body: Any) -> ServerUpdate:
    """Validate an update body's form; ``Invalid`` (400) names the first bad field."""
    server = parse_model(_UpdateBody, body).server
    return ServerUpdate(name=server.name, access_ip_v4=server.access_ip_v4,
                        access_ip_v6=server.access_ip_v6)


async def update_server(deps: ApiDeps, ctx: RequestContext, server_id: str,
                        update: ServerUpdate) -> Instance:
    """Write the update to a server the caller may see (404 otherwise); the server as
    it is afterwards."""
    instance = await get_server(deps, ctx, server_id)
    changes: InstanceChanges = {}
    if update.name is not None:
        changes["display_name"] = update.name
    if update.access_ip_v4 is not None:
        changes["access_ip_v4"] = update.access_ip_v4
    if update.access_ip_v6 is not None:
        changes["access_ip_v6"] = update.access_ip_v6
    if not changes:
        return instance
    try:
        return await deps.db.instances.update(instance.id, changes,
                                              expected_task_state=ANY_TASK_STATE)
    except NotFound:
        raise NotFound(f"Instance {server_id} could not be found.") from None
