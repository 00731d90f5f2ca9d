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
from strato.db.uow import InstanceQuery
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, InvalidReference, NotFound, OverQuota
from strato.domain.ids import HostName, ImageId, InstanceId, ProjectId, ReservationId
from strato.domain.images import Image, ImageStatus
from strato.domain.instances import Instance, VmState
from strato.domain.quotas import DEFAULT_LIMITS, exceeds
from strato.domain.requests import BootRequest, InjectedFile, SchedulerHints
from strato.domain.resources import Flavor
from strato.image.service import get_image

__all__ = ["MAX_COUNT", "CreateServers", "ListServers", "parse_create", "parse_list",
           "to_boot_request"]

# Most servers one request may create: a bigger batch is a mistake, not a workload.
MAX_COUNT = 1000
MAX_USER_DATA = 65535  # characters of base64, as Nova's schema counts them
_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")  # Nova's metadata key pattern


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not _METADATA_KEY.match(key):
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


class _NetworkBody(BaseModel):
    model_config = _Strict

    uuid: str | None = None
    port: str | None = None
    fixed_ip: str | None = None
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
    # Accepted for compatibility; networking and security groups come with the network
    # service, until then every server gets no ports.
    networks: Literal["auto", "none"] | list[_NetworkBody] | None = None
    security_groups: list[_SecurityGroupBody] | None = None
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")
    access_ip_v4: Annotated[str, AfterValidator(_check_ip(4))] | None = Field(
        None, alias="accessIPv4")
    access_ip_v6: Annotated[str, AfterValidator(_check_ip(6))] | None = Field(
        None, alias="accessIPv6")
    admin_pass: str | None = Field(None, alias="adminPass")

    @model_validator(mode="after")
    def _counts(self) -> _ServerBody:
        if (self.min_count or 1) > (self.max_count or self.min_count or 1):
            raise ValueError("min_count must be <= max_count")
        return self


class _CreateBody(BaseModel):
    model_config = _Strict

    server: _ServerBody
    # Hints are accepted in both spellings; strato's scheduler does not read them yet.
    hints: dict[str, Any] | None = Field(None, alias="os:scheduler_hints")
    legacy_hints: dict[str, Any] | None = Field(None, alias="OS-SCH-HNT:scheduler_hints")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateServers:
    """A validated ``POST /servers``, with its flavor and image resolved."""

    name: str
    flavor: Flavor
    image: Image
    count: int             # max_count: as many as the quota allows, down to min_count
    min_count: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    key_name: str | None = None
    config_drive: bool = False
    files: tuple[InjectedFile, ...] = ()
    hints: SchedulerHints = SchedulerHints()
    return_reservation_id: bool = False
    admin_pass: str | None = None


async def parse_create(body: Any, deps: ApiDeps, ctx: RequestContext) -> CreateServers:
    """Validate a create body; ``Invalid`` (400) names the first bad field, an unusable
    flavor or image is ``InvalidReference`` (400, as Nova answers for a body's refs).
    Metadata and injected files are checked against the project's quotas here (403,
    Nova's QuotaError); the instance quotas are checked when the rows are written."""
    server = parse_model(_CreateBody, body).server
    _check_quotas(server, await project_limits(deps, ctx.project_id))
    flavor = await _resolve_flavor(deps, ctx, _last_segment(str(server.flavor_ref)))
    image = await _resolve_image(deps, ctx, server.image_ref)
    _check_fit(flavor, image)
    return CreateServers(
        name=server.name, flavor=flavor, image=image,
        count=server.max_count or server.min_count or 1, min_count=server.min_count or 1,
        metadata=dict(server.metadata), user_data=server.user_data,
        key_name=server.key_name, config_drive=server.config_drive,
        files=tuple(InjectedFile(path=f.path, contents=f.contents)
                    for f in server.personality),
        hints=_hints(server.availability_zone, ctx),
        return_reservation_id=server.return_reservation_id, admin_pass=server.admin_pass)


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
    return image


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


def _hints(availability_zone: str | None, ctx: RequestContext) -> SchedulerHints:
    """Nova's ``zone:host[:node]`` form forces a host, which only an admin may do."""
    zone, _, rest = (availability_zone or "").partition(":")
    host = rest.partition(":")[0]
    if host and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:create:forced_host "
                        "to be performed.")
    return SchedulerHints(availability_zone=zone or None,
                          force_host=HostName(host) if host else None)


def to_boot_request(req: CreateServers, instance: Instance) -> BootRequest:
    """The conductor's request for building one of the instances ``req`` created."""
    return BootRequest(
        instance_id=instance.id, project_id=instance.project_id, user_id=instance.user_id,
        name=instance.display_name, flavor=req.flavor, image=req.image,
        reservation_id=ReservationId(instance.reservation_id),
        launch_index=instance.launch_index, metadata=dict(instance.metadata),
        user_data=instance.user_data, key_name=instance.key_name,
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
    if not raw:
        return None
    try:
        re.compile(raw)
    except re.error:
        raise Invalid(f"Invalid regular expression for name: {raw!r}") from None
    return raw


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
