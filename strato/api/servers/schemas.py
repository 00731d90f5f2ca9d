"""Nova server request bodies and queries -> domain requests (microversion 2.1).

This module is the only builder of :class:`~strato.domain.requests.BootRequest`:
:func:`parse_create` validates a ``POST /servers`` body and resolves its flavor and
image into a :class:`CreateServers`; :func:`to_boot_request` turns that plus one stored
instance into the request the conductor receives. Nothing below ``strato.api`` sees the
wire format.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import QueryParams

from strato.api.bodies import parse_model
from strato.api.deps import ApiDeps
from strato.api.fields import Name, NovaBool, PositiveInt
from strato.api.flavors.service import get_flavor
from strato.api.paging import Page
from strato.api.quotas.service import project_limits
from strato.api.regexfilter import check_regex_filter
from strato.db.uow import InstanceQuery
from strato.domain.aggregates import DEFAULT_ZONE
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, InvalidReference, NotFound, OverQuota
from strato.domain.ids import (
    GroupId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    ReservationId,
)
from strato.domain.images import Image, ImageStatus
from strato.domain.instances import Instance, VmState
from strato.domain.quotas import DEFAULT_LIMITS, exceeds
from strato.domain.requests import BootRequest, InjectedFile, RequestedNetwork, SchedulerHints
from strato.domain.resources import Flavor
from strato.image.service import get_image

__all__ = ["MAX_COUNT", "CreateServers", "ListServers", "NetworkChoice", "Networking",
           "parse_create", "parse_list", "to_boot_request"]

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
    def check(value: str) -> str:
        if value and ipaddress.ip_address(value).version != version:
            raise ValueError(f"not an IPv{version} address")
        return value
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
# length. A create checks the project's own quotas instead (see _check_quotas).
MAX_INJECTED_FILES = DEFAULT_LIMITS["injected_files"]
MAX_INJECTED_FILE_BYTES = DEFAULT_LIMITS["injected_file_content_bytes"]
MAX_INJECTED_PATH_BYTES = DEFAULT_LIMITS["injected_file_path_bytes"]


class _PersonalityForm(BaseModel):
    """One injected file, its form only: an absolute path and base64 contents. A create
    checks the count and sizes against the project's quotas (``injected_files``,
    ``injected_file_path_bytes``, ``injected_file_content_bytes``) in
    :func:`parse_create`."""

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
class Networking:
    """A create's NICs and security groups, resolved against the Network API: every
    network and port exists and is the project's to use; group names became ids."""

    networks: tuple[RequestedNetwork, ...] = ()
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateServers:
    """A validated ``POST /servers``, with its flavor and image resolved (its networks
    and security groups are resolved by the service, into a :class:`Networking`)."""

    name: str
    flavor: Flavor
    image: Image
    count: int             # max_count: as many as the quota allows, down to min_count
    min_count: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    key_name: str | None = None
    key_data: str | None = None  # the public key of ``key_name``
    config_drive: bool = False
    files: tuple[InjectedFile, ...] = ()
    hints: SchedulerHints = SchedulerHints()
    return_reservation_id: bool = False
    admin_pass: str | None = None
    networks: NetworkChoice = None
    security_groups: tuple[str, ...] = ()  # names (or ids), as the body gave them


async def parse_create(body: Any, deps: ApiDeps, ctx: RequestContext) -> CreateServers:
    """Validate a create body; ``Invalid`` (400) names the first bad field, an unusable
    flavor or image is ``InvalidReference`` (400, as Nova answers for a body's refs).
    Metadata and injected files are checked against the project's quotas here (403,
    Nova's QuotaError); the instance quotas are checked when the rows are written. The
    ``networks`` entries are checked in form only (see :func:`_requested_networks`)."""
    parsed = parse_model(_CreateBody, body)
    server = parsed.server
    count = server.max_count or server.min_count or 1
    networks = _requested_networks(server.networks, count)
    _check_quotas(server, await project_limits(deps, ctx.project_id))
    flavor = await _resolve_flavor(deps, ctx, _last_segment(str(server.flavor_ref)))
    image = await _resolve_image(deps, ctx, server.image_ref)
    _check_fit(flavor, image)
    return CreateServers(
        name=server.name, flavor=flavor, image=image, networks=networks,
        security_groups=tuple(dict.fromkeys(g.name for g in server.security_groups or ())),
        count=count, min_count=server.min_count or 1,
        metadata=dict(server.metadata), user_data=server.user_data,
        key_name=server.key_name, key_data=await _key_data(deps, ctx, server.key_name),
        config_drive=server.config_drive,
        files=tuple(InjectedFile(path=f.path, contents=f.contents)
                    for f in server.personality),
        hints=await _hints(server.availability_zone, parsed.hints or parsed.legacy_hints,
                           deps, ctx),
        return_reservation_id=server.return_reservation_id, admin_pass=server.admin_pass)


async def _key_data(deps: ApiDeps, ctx: RequestContext, key_name: str | None) -> str | None:
    """The public key of the caller's key pair ``key_name``; ``Invalid`` (400, Nova's
    message) if the caller has none of that name."""
    if key_name is None:
        return None
    try:
        return (await deps.db.key_pairs.get(ctx.user_id, key_name)).public_key
    except NotFound:
        raise Invalid("Invalid key_name provided.") from None


def _check_quotas(server: _ServerBody, limits: dict[str, int]) -> None:
    limit = limits["metadata_items"]
    if exceeds(limit, 0, len(server.metadata)):
        raise OverQuota(f"Quota exceeded for metadata_items: at most {limit} items allowed")
    limit = limits["injected_files"]
    if exceeds(limit, 0, len(server.personality)):
        raise OverQuota(f"Quota exceeded for injected_files: at most {limit} personality "
                      "files allowed")
    path_limit = limits["injected_file_path_bytes"]
    size_limit = limits["injected_file_content_bytes"]
    for file in server.personality:
        if exceeds(path_limit, 0, len(file.path.encode())):
            raise OverQuota(f"Personality file path exceeds maximum {path_limit} bytes")
        if exceeds(size_limit, 0, file.size):
            raise OverQuota(f"Personality file content exceeds maximum {size_limit} bytes")


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


def _last_segment(ref: str) -> str:
    # A reference may be a bare id or a URL ending in it (".../flavors/42").
    return ref.rstrip("/").rsplit("/", 1)[-1]


async def _resolve_flavor(deps: ApiDeps, ctx: RequestContext, flavor_id: str) -> Flavor:
    try:
        flavor = await get_flavor(deps.db, ctx, flavor_id)
    except NotFound as exc:
        # A body's reference to something missing is a 400 in Nova, not a 404.
        raise InvalidReference(exc.message) from None
    if flavor.disabled:
        raise InvalidReference(f"Flavor {flavor_id} is disabled.")
    return flavor


async def _resolve_image(deps: ApiDeps, ctx: RequestContext, ref: str | None) -> Image:
    if not ref:
        # Booting from a volume would allow this; strato has no volumes yet.
        raise Invalid("Missing imageRef attribute")
    image_id = _last_segment(ref)
    try:
        uuid.UUID(image_id)
    except ValueError:
        raise Invalid("Invalid imageRef provided.") from None
    try:
        # The image service's own visibility rule: members of a shared image may boot it.
        image = await get_image(deps.db.images, ctx, ImageId(image_id))
    except NotFound:
        raise InvalidReference("Can not find requested image") from None
    if image.status != ImageStatus.ACTIVE:
        raise InvalidReference(f"Image {image_id} is not active.")
    for kind in BOOT_FILES:
        await _check_boot_file(deps, ctx, image, kind)
    return image


# An AMI-style image names the images its guest boots as kernel and initrd. Computes
# fetch those with the service token, which reads every image: so the user's own rights
# are checked here, and the compute boots only the ids the request carries.
BOOT_FILES = ("kernel_id", "ramdisk_id")


def boot_files(image: Image) -> tuple[ImageId | None, ImageId | None]:
    """The kernel and ramdisk image ids of an image :func:`_resolve_image` accepted."""
    kernel, ramdisk = (image.properties.get(kind) or None for kind in BOOT_FILES)
    return (ImageId(kernel) if kernel else None, ImageId(ramdisk) if ramdisk else None)


async def _check_boot_file(deps: ApiDeps, ctx: RequestContext, image: Image, kind: str) -> None:
    """The image's ``kind`` (``kernel_id``/``ramdisk_id``) property, if set, is the UUID
    of an active image the caller may see (400 otherwise, as Nova answers)."""
    ref = image.properties.get(kind)
    if not ref:
        return
    try:
        uuid.UUID(ref)
    except ValueError:
        raise Invalid(f"Invalid {kind} property of image {image.id}: "
                      f"{ref[:60]!r} is not an image UUID.") from None
    try:
        found = await get_image(deps.db.images, ctx, ImageId(ref))
    except NotFound:
        raise InvalidReference(f"Image {ref} could not be found.") from None
    if found.status != ImageStatus.ACTIVE:
        raise InvalidReference(f"Image {ref} is not active.")


def _check_fit(flavor: Flavor, image: Image) -> None:
    """Nova's flavor-versus-image checks, with its messages (400 FlavorMemoryTooSmall,
    FlavorDiskSmallerThanMinDisk, FlavorDiskSmallerThanImage)."""
    if flavor.memory_mb < image.min_ram:
        raise InvalidReference("Flavor's memory is too small for requested image.")
    if not flavor.root_gb:
        return  # a root disk of 0 means "as big as the image" (Nova's image-backed rule)
    flavor_bytes = flavor.root_gb * 2**30
    if image.min_disk > flavor.root_gb:
        raise InvalidReference(
            f"Flavor's disk is too small for requested image. Flavor disk is "
            f"{flavor_bytes} bytes, minimum size is {image.min_disk * 2**30} bytes.")
    # The disk must hold the image expanded (virtual size), not just its file.
    image_bytes = max(image.size or 0, image.virtual_size or 0)
    if image_bytes > flavor_bytes:
        raise InvalidReference(
            f"Flavor's disk is too small for requested image. Flavor disk is "
            f"{flavor_bytes} bytes, image is {image_bytes} bytes.")


async def _hints(availability_zone: str | None, hints: _HintsBody | None, deps: ApiDeps,
                 ctx: RequestContext) -> SchedulerHints:
    """Where the user asked the instances to go, checked against what exists.

    ``availability_zone`` is ``zone``, ``zone:host`` or ``zone:host:node`` (either part
    may be empty: ``:host``, ``zone::node``); forcing a host or node is admin-only (403),
    and a zone, host or node that does not exist is a 400, as in Nova. The ``group``
    hint must name a server group the caller can see (400 otherwise)."""
    zone, _, rest = (availability_zone or "").partition(":")
    host, _, node = rest.partition(":")
    if (host or node) and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:create:forced_host "
                        "to be performed.")
    if zone or host or node:
        await _check_placement(deps, zone, host, node)
    group = None
    if hints is not None and hints.group is not None:
        try:
            found = await deps.db.groups.get(
                GroupId(hints.group), project_id=ctx.visible_project)
        except NotFound:
            raise InvalidReference(f"Invalid server group: Instance group {hints.group} "
                                   f"could not be found.") from None
        group = found.id
    return SchedulerHints(availability_zone=zone or None,
                          force_host=HostName(host) if host else None,
                          force_node=NodeName(node) if node else None, group=group)


async def _check_placement(deps: ApiDeps, zone: str, host: str, node: str) -> None:
    """The zone is one an aggregate names, or the default zone while a node is in no
    zone; the host and node exist. Targeted reads: no full scan of the nodes."""
    nodes = deps.db.nodes
    if zone and zone not in set((await deps.db.aggregates.host_zones()).values()) and not (
            zone == DEFAULT_ZONE and await nodes.exists(unzoned=True)):
        raise Invalid("The requested availability zone is not available")
    if host and not await nodes.exists(host=HostName(host)):
        raise Invalid(f"Compute host {host} could not be found.")
    if node and not await nodes.exists(host=HostName(host) if host else None,
                                       node=NodeName(node)):
        raise Invalid(f"Compute host node {host or '*'}/{node} could not be found.")


def to_boot_request(req: CreateServers, instance: Instance,
                    networking: Networking) -> BootRequest:
    """The conductor's request for building one of the instances ``req`` created, with
    the NICs and security groups ``req`` resolved to."""
    kernel_id, ramdisk_id = boot_files(req.image)
    return BootRequest(
        kernel_id=kernel_id, ramdisk_id=ramdisk_id,
        networks=networking.networks, security_groups=networking.security_groups,
        instance_id=instance.id, project_id=instance.project_id, user_id=instance.user_id,
        name=instance.display_name, flavor=req.flavor, image=req.image,
        reservation_id=ReservationId(instance.reservation_id),
        launch_index=instance.launch_index, metadata=dict(instance.metadata),
        user_data=instance.user_data, key_name=instance.key_name, key_data=req.key_data,
        config_drive=instance.config_drive, files=req.files, hints=req.hints)


# --- GET /servers and /servers/detail -----------------------------------------------

# Nova's API status -> the vm_states it stands for (nova/api/openstack/common.py).
_STATES_BY_STATUS: dict[str, tuple[VmState, ...]] = {
    "ACTIVE": (VmState.ACTIVE,), "BUILD": (VmState.BUILDING,), "ERROR": (VmState.ERROR,),
    "SHUTOFF": (VmState.STOPPED,), "PAUSED": (VmState.PAUSED,),
    "SUSPENDED": (VmState.SUSPENDED,), "DELETED": (VmState.DELETED,),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListServers:
    """A server listing: the repository query, or ``None`` when a filter (an unknown
    status) already means "nothing", as Nova answers an empty list then."""

    query: InstanceQuery | None


def parse_list(params: QueryParams, page: Page, ctx: RequestContext) -> ListServers:
    """The listing query from ``GET /servers`` parameters; unknown parameters are
    ignored (Nova 2.1). ``all_tenants`` and ``status=DELETED`` need the admin role (403
    otherwise); ``changes-since`` includes deleted servers, as in Nova."""
    all_tenants = _all_tenants(params)
    if all_tenants and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants "
                        "to be performed.")
    vm_states = _vm_states(params.getlist("status"))
    if vm_states == ():
        return ListServers(query=None)
    wants_deleted = VmState.DELETED in (vm_states or ())
    if wants_deleted and not ctx.is_admin:
        raise Forbidden("Only administrators may list deleted instances")
    changes_since = _changes_since(params.get("changes-since"))
    project = _project_filter(params, ctx, all_tenants)
    return ListServers(query=InstanceQuery(
        project_id=project, name=_name_filter(params.get("name")), vm_states=vm_states,
        changes_since=changes_since,
        host=HostName(params["host"]) if ctx.is_admin and params.get("host") else None,
        reservation_id=params.get("reservation_id") or None,
        include_deleted=changes_since is not None or wants_deleted,
        limit=page.limit, marker=InstanceId(page.marker) if page.marker else None))


def _all_tenants(params: QueryParams) -> bool:
    if "all_tenants" not in params:
        return False
    raw = params["all_tenants"].lower()
    if raw in ("", "true", "1", "on", "yes", "t", "y"):
        return True
    if raw in ("false", "0", "off", "no", "f", "n"):
        return False
    raise Invalid(f"Invalid value '{params['all_tenants']}' for all_tenants")


def _project_filter(params: QueryParams, ctx: RequestContext,
                    all_tenants: bool) -> ProjectId | None:
    if not all_tenants:
        return ctx.project_id
    wanted = params.get("project_id") or params.get("tenant_id")
    return ProjectId(wanted) if wanted else None


def _vm_states(statuses: list[str]) -> tuple[VmState, ...] | None:
    """``None`` for no status filter; an empty tuple when no status is known."""
    if not statuses:
        return None
    states = [s for status in statuses for s in _STATES_BY_STATUS.get(status.upper(), ())]
    return tuple(dict.fromkeys(states))


def _name_filter(raw: str | None) -> str | None:
    # A bounded, portable regex subset (strato.api.regexfilter), checked before the query.
    return check_regex_filter("name", raw) if raw else None


def _changes_since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    # An unencoded "+" in the UTC offset arrives as a space: try that reading too.
    for text in (raw.strip(), "+".join(raw.strip().rsplit(" ", 1))):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            continue
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    raise Invalid(f"Invalid input for query parameters changes-since. Value: {raw}. "
                  f"'{raw}' is not a 'date-time'")


def parse_action(body: Any) -> tuple[str, Any]:
    """A server action body: exactly one key, the action's name, and its arguments."""
    if not isinstance(body, dict) or len(body) != 1:
        raise Invalid("An action body must be an object with exactly one action.")
    [(name, args)] = body.items()
    return str(name), args


def parse_console_length(args: Any) -> int | None:
    """``os-getConsoleOutput``'s ``length``: lines from the end; absent, null or -1 for
    all (Nova also takes the number as a string)."""
    if args is None:
        args = {}
    if not isinstance(args, dict) or set(args) - {"length"}:
        raise Invalid("Invalid input for os-getConsoleOutput: only 'length' is allowed.")
    length = args.get("length")
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int | str):
        raise Invalid("Invalid input for field/attribute length: must be an integer.")
    try:
        value = int(length)
    except ValueError:
        raise Invalid("Invalid input for field/attribute length: must be an integer."
                      ) from None
    if value < -1:
        raise Invalid("Invalid input for field/attribute length: must be -1 or more.")
    return None if value == -1 else value
