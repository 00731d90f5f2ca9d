"""``POST /v2.1/servers`` bodies -> :class:`CreateServers` (microversion 2.1).

Pure, synchronous wire parsing: :func:`parse_create` validates the body's form (Nova's
JSON schema, its messages) and reads nothing. Its flavor, image, key pair, zone, server
group, networks and security groups are still references: ``strato.api.servers.service``
looks them up (``resolve_create``) and builds the instances and their
:class:`~strato.domain.requests.BootRequest` from what they resolved to. The listing query
is ``strato.api.servers.listing``'s, the action bodies ``strato.api.servers.action_schemas``'.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from strato.api.bodies import parse_model
from strato.api.fields import Name, NovaBool, PositiveInt
from strato.domain.errors import Invalid
from strato.domain.ids import GroupId, HostName, NodeName
from strato.domain.quotas import DEFAULT_LIMITS
from strato.domain.requests import InjectedFile, RequestedNetwork

__all__ = ["MAX_COUNT", "CreateServers", "NetworkChoice", "parse_create", "ref_id"]

# Most servers one request may create: a bigger batch is a mistake, not a workload.
MAX_COUNT = 1000
MAX_USER_DATA = 65535  # characters of base64, as Nova's schema counts them
_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")  # Nova's metadata key pattern


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError(f"metadata key {key[:40]!r} must be 1 to 255 letters, digits "
                             "or '-_:. '")
        if len(item) > 255:
            raise ValueError(f"metadata value of {key!r} is longer than 255 characters")
    return value


def _check_user_data(value: str) -> str:
    if len(value) > MAX_USER_DATA:
        raise ValueError(f"user_data is longer than {MAX_USER_DATA} characters")
    try:
        # Line breaks are common in base64 tools' output; anything else must be base64.
        base64.b64decode(re.sub(r"[\r\n]", "", value), validate=True)
    except binascii.Error:
        raise ValueError("user_data is not valid base64") from None
    return value


def _check_ip(version: int) -> Any:
    """An ``accessIPv4``/``accessIPv6`` check: an address of that version, returned in
    its canonical form (as Nova stores it); empty stays empty."""
    def check(value: str) -> str:
        if not value:
            return value
        address = ipaddress.ip_address(value)
        if address.version != version:
            raise ValueError(f"not an IPv{version} address")
        return str(address)
    return check


_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_uuid(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a 'uuid'") from None
    return value


_Uuid = Annotated[str, AfterValidator(_check_uuid)]


def _check_any_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None
    return value


class _NetworkBody(BaseModel):
    """One entry of ``networks`` (Nova's schema: a network, or a port, and optionally a
    fixed IP on the network); the rules between the keys are :func:`_requested_network`'s."""

    model_config = _Strict

    uuid: str | None = None
    port: _Uuid | None = None
    fixed_ip: Annotated[str, AfterValidator(_check_any_ip)] | None = None
    tag: str | None = None


class _SecurityGroupBody(BaseModel):
    model_config = _Strict

    name: Annotated[str, Field(min_length=1, max_length=255)]


# Nova's default quotas for injected files (personality): count, bytes per file, path
# length. A create checks the project's own quotas instead (service.resolve_create).
MAX_INJECTED_FILES = DEFAULT_LIMITS["injected_files"]
MAX_INJECTED_FILE_BYTES = DEFAULT_LIMITS["injected_file_content_bytes"]
MAX_INJECTED_PATH_BYTES = DEFAULT_LIMITS["injected_file_path_bytes"]


class _PersonalityForm(BaseModel):
    """One injected file, its form only: an absolute path and base64 contents. A create
    checks the count and sizes against the project's quotas (``injected_files``,
    ``injected_file_path_bytes``, ``injected_file_content_bytes``) when the service
    resolves it (``strato.api.servers.service.resolve_create``)."""

    model_config = _Strict

    path: Annotated[str, Field(min_length=1)]
    contents: str

    @model_validator(mode="after")
    def _form(self) -> _PersonalityForm:
        if not self.path.startswith("/") or "\0" in self.path or any(
                part in ("..", ".") for part in self.path.split("/")):
            raise ValueError("Personality file path must be an absolute path without "
                             "'.' or '..' parts")
        try:
            base64.b64decode(self.contents, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("Personality content for " + self.path +
                             " cannot be decoded") from None
        return self

    @property
    def size(self) -> int:
        """The decoded content's length in bytes."""
        return len(base64.b64decode(self.contents, validate=True))


class _PersonalityBody(_PersonalityForm):
    """One injected file within Nova's default quotas (for bodies that are not checked
    against a project's quotas)."""

    @model_validator(mode="after")
    def _limits(self) -> _PersonalityBody:
        if len(self.path.encode()) > MAX_INJECTED_PATH_BYTES:
            raise ValueError(f"Personality file path exceeds maximum "
                             f"{MAX_INJECTED_PATH_BYTES} bytes")
        if self.size > MAX_INJECTED_FILE_BYTES:
            raise ValueError(f"Personality file content exceeds maximum "
                             f"{MAX_INJECTED_FILE_BYTES} bytes")
        return self


class _BlockDeviceBody(BaseModel):
    """One ``block_device_mapping_v2`` entry. strato has no volumes: the one mapping it
    takes is the image as the local root disk (``source_type`` image, ``destination_type``
    local, ``boot_index`` 0), which the openstack CLI sends for every ``--image`` boot."""

    model_config = _Strict

    uuid: _Uuid
    source_type: Literal["image"]
    destination_type: Literal["local"] = "local"
    boot_index: Annotated[int, Field(ge=0, le=0)] | Annotated[str, Field(pattern="^0$")]
    delete_on_termination: NovaBool = True
    device_name: str | None = None
    disk_bus: str | None = None
    device_type: Literal["disk"] | None = None
    volume_size: None = None
    guest_format: None = None


class _ServerBody(BaseModel):
    """The ``server`` object of ``POST /v2.1/servers``; unknown keys are a 400."""

    model_config = _Strict

    name: Name
    image_ref: str | None = Field(None, alias="imageRef")
    flavor_ref: Annotated[str, Field(min_length=1)] | int = Field(alias="flavorRef")
    metadata: Annotated[dict[str, str], AfterValidator(_check_metadata)] = {}
    min_count: Annotated[PositiveInt, Field(le=MAX_COUNT)] | None = None
    max_count: Annotated[PositiveInt, Field(le=MAX_COUNT)] | None = None
    availability_zone: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    key_name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    user_data: Annotated[str, AfterValidator(_check_user_data)] | None = None
    return_reservation_id: NovaBool = False
    config_drive: NovaBool = False
    personality: list[_PersonalityForm] = []
    # "auto" and "none" as microversion 2.37 takes them; a list as 2.1 does.
    networks: Literal["auto", "none"] | list[_NetworkBody] | None = None
    security_groups: list[_SecurityGroupBody] | None = None
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")
    access_ip_v4: Annotated[str, AfterValidator(_check_ip(4))] | None = Field(
        None, alias="accessIPv4")
    access_ip_v6: Annotated[str, AfterValidator(_check_ip(6))] | None = Field(
        None, alias="accessIPv6")
    admin_pass: str | None = Field(None, alias="adminPass")
    block_device_mapping_v2: Annotated[list[_BlockDeviceBody],
                                       Field(min_length=1, max_length=1)] | None = None

    @model_validator(mode="after")
    def _counts(self) -> _ServerBody:
        if (self.min_count or 1) > (self.max_count or self.min_count or 1):
            raise ValueError("min_count must be <= max_count")
        return self

    @model_validator(mode="after")
    def _root_from_mapping(self) -> _ServerBody:
        if not self.block_device_mapping_v2:
            return self
        mapped = self.block_device_mapping_v2[0].uuid
        if self.image_ref and self.image_ref.rstrip("/").rsplit("/", 1)[-1] != mapped:
            raise ValueError("block_device_mapping_v2 boots another image than imageRef")
        if not self.image_ref:
            object.__setattr__(self, "image_ref", mapped)
        return self


class _HintsBody(BaseModel):
    """``os:scheduler_hints``: the hints strato's scheduler reads are type-checked; others
    (``query``, ``target_cell``, ``build_near_host_ip``, ...) are accepted and ignored,
    as Nova's schema allows additional properties."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    group: _Uuid | None = None
    same_host: _Uuid | list[_Uuid] | None = None
    different_host: _Uuid | list[_Uuid] | None = None


class _CreateBody(BaseModel):
    model_config = _Strict

    server: _ServerBody
    # Hints are accepted in both spellings (the second is the legacy extension's).
    hints: _HintsBody | None = Field(None, alias="os:scheduler_hints")
    legacy_hints: _HintsBody | None = Field(None, alias="OS-SCH-HNT:scheduler_hints")


# The networks a create asked for: omitted (``None``), ``"auto"``, ``"none"``, or its
# entries in NIC order, not yet checked against the Network API (a port entry has no
# network id yet).
NetworkChoice = Literal["auto", "none"] | tuple[RequestedNetwork, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateServers:
    """A ``POST /servers`` body, valid in form; its references (flavor, image, key
    pair, zone/host/node, server group, networks, security groups) not yet looked up."""

    name: str
    flavor_id: str
    image_ref: str | None   # as the body gave it (a bare id or a URL), or None
    count: int              # max_count: as many as the quota allows, down to min_count
    min_count: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    key_name: str | None = None
    config_drive: bool = False
    files: tuple[InjectedFile, ...] = ()
    # availability_zone "zone", "zone:host" or "zone:host:node" (either part may be
    # empty: ":host", "zone::node"), split.
    zone: str | None = None
    force_host: HostName | None = None
    force_node: NodeName | None = None
    group: GroupId | None = None  # the ``group`` scheduler hint
    return_reservation_id: bool = False
    admin_pass: str | None = None
    networks: NetworkChoice = None
    security_groups: tuple[str, ...] = ()  # names (or ids), as the body gave them
    access_ip_v4: str | None = None  # accessIPv4/accessIPv6, kept as given
    access_ip_v6: str | None = None


def parse_create(body: Any) -> CreateServers:
    """Validate a create body's form; ``Invalid`` (400) names the first bad field. The
    ``networks`` entries are checked in form only (see :func:`_requested_networks`)."""
    parsed = parse_model(_CreateBody, body)
    server = parsed.server
    count = server.max_count or server.min_count or 1
    networks = _requested_networks(server.networks, count)
    zone, _, rest = (server.availability_zone or "").partition(":")
    host, _, node = rest.partition(":")
    hints = parsed.hints or parsed.legacy_hints
    return CreateServers(
        name=server.name, flavor_id=ref_id(str(server.flavor_ref)),
        image_ref=server.image_ref, networks=networks,
        security_groups=tuple(dict.fromkeys(g.name for g in server.security_groups or ())),
        count=count, min_count=server.min_count or 1,
        metadata=dict(server.metadata), user_data=server.user_data,
        key_name=server.key_name, config_drive=server.config_drive,
        files=tuple(InjectedFile(path=f.path, contents=f.contents)
                    for f in server.personality),
        zone=zone or None, force_host=HostName(host) if host else None,
        force_node=NodeName(node) if node else None,
        group=GroupId(hints.group) if hints is not None and hints.group is not None else None,
        return_reservation_id=server.return_reservation_id, admin_pass=server.admin_pass,
        access_ip_v4=server.access_ip_v4 or None, access_ip_v6=server.access_ip_v6 or None)


def _requested_networks(body: Literal["auto", "none"] | list[_NetworkBody] | None,
                        count: int) -> NetworkChoice:
    """The body's ``networks`` in form: each entry a network (a UUID) or a port, a port
    asked for once and never for a batch, a fixed IP only for one server (400s with
    Nova's messages). An empty list means what an omitted one does, as in Nova 2.1."""
    if body is None or isinstance(body, str):
        return body
    if not body:
        return None
    entries = tuple(_requested_network(entry) for entry in body)
    ports = [entry.port_id for entry in entries if entry.port_id]
    if count > 1 and ports:
        raise Invalid("Unable to launch multiple instances with a single configured port "
                      "ID. Please launch your instance one by one with different ports.")
    if count > 1 and any(entry.fixed_ip for entry in entries):
        raise Invalid("Failed to launch instances: max_count cannot be greater than 1 if "
                      "an fixed_ip is specified.")
    if twice := next((p for i, p in enumerate(ports) if p in ports[:i]), None):
        raise Invalid(f"Port {twice} is requested more than once.")
    return entries


def _requested_network(entry: _NetworkBody) -> RequestedNetwork:
    if entry.port:
        if entry.fixed_ip is not None:
            raise Invalid(f"Specified Fixed IP '{entry.fixed_ip}' cannot be used with port "
                          f"'{entry.port}': the two cannot be specified together.")
        return RequestedNetwork(port_id=entry.port)
    if entry.uuid is None:
        raise Invalid("Bad network format: missing 'uuid'")
    try:
        uuid.UUID(entry.uuid)
    except ValueError:
        raise Invalid(f"Bad networks format: network uuid is not in proper format "
                      f"({entry.uuid})") from None
    return RequestedNetwork(network_id=entry.uuid, fixed_ip=entry.fixed_ip)


def ref_id(ref: str) -> str:
    """The id a body's reference names: a bare id, or a URL ending in it
    (``.../flavors/42``)."""
    return ref.rstrip("/").rsplit("/", 1)[-1]
