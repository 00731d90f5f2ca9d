"""What the server routes do, without HTTP: create, read, list and delete servers.

A create reads as three steps. ``strato.api.servers.schemas.parse_create`` parses the
body (pure, synchronous); :func:`resolve_create` looks up everything it names (quotas on
metadata and files, flavor, image, key pair, zone/host/node, server group, security groups,
networks and ports: every 400/403/409 before anything is written); :func:`new_instances`
and :func:`boot_request` build the rows and the conductor's requests from that.

Create follows the first steps of Nova's boot path: after the resolve, write the
instance rows (building, scheduling) and their "create" actions in one transaction,
which first counts the project's usage against its quotas (as many servers as fit, down
to ``min_count``, else 403), then cast one ``BuildInstances`` to the conductor and
return at once. Delete marks the instance ``deleting`` with a compare-and-swap, so a
build racing it loses, and either deletes locally (never scheduled) or asks the
instance's compute host to tear it down.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from strato.api.deps import ApiDeps
from strato.api.flavors.service import get_flavor
from strato.api.quotas.service import project_limits, quota_defaults
from strato.api.servers.listing import ListServers
from strato.api.servers.schemas import CreateServers, NetworkChoice, ref_id
from strato.db.ports import Database
from strato.domain.aggregates import DEFAULT_ZONE
from strato.domain.context import RequestContext
from strato.domain.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidReference,
    InvalidState,
    NotFound,
    OverQuota,
    StratoError,
)
from strato.domain.ids import ImageId, InstanceId, ProjectId, ReservationId, new_uuid
from strato.domain.images import Image, ImageStatus
from strato.domain.instances import Fault, Instance, PowerState, TaskState, VmState
from strato.domain.networks import Network, SecurityGroup, Subnet, Vif
from strato.domain.quotas import exceeds
from strato.domain.requests import BootRequest, InjectedFile, RequestedNetwork, SchedulerHints
from strato.domain.resources import Flavor
from strato.image.service import get_image

__all__ = ["BootInputs", "CreateResult", "ResolvedCreate", "boot_request", "check_fit",
           "create_servers", "delete_server", "get_server", "list_servers", "new_instances",
           "resolve_create", "resolve_image", "server_vifs"]

logger = logging.getLogger(__name__)

# A delete retries its compare-and-swap this often when a build moves the task state
# between our read and our write.
_DELETE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateResult:
    """The instances one create request made (launch index order)."""

    reservation_id: ReservationId
    instances: tuple[Instance, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BootInputs:
    """What a :class:`~strato.domain.requests.BootRequest` carries beyond its instance's
    row, every part already looked up: the image (the user may boot it, and its kernel
    and ramdisk), the key pair's public key, the files to inject, the checked placement
    hints, NICs and security group ids."""

    image: Image
    key_data: str | None = None
    files: tuple[InjectedFile, ...] = ()
    hints: SchedulerHints = SchedulerHints()
    networks: tuple[RequestedNetwork, ...] = ()
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedCreate:
    """A create with every reference looked up: what :func:`new_instances` and
    :func:`boot_request` build from."""

    request: CreateServers
    flavor: Flavor
    boot: BootInputs


async def create_servers(deps: ApiDeps, ctx: RequestContext,
                         req: CreateServers) -> CreateResult:
    """Store ``req.count`` instances (building/scheduling), or as many as the project's
    quota allows down to ``req.min_count`` (``OverQuota`` and nothing stored below
    that), and ask the conductor to build them. If the conductor cannot be reached, the
    instances go to ERROR with a fault instead of staying in BUILD forever. Everything
    ``req`` names is resolved first (:func:`resolve_create`): a bad reference is a 400,
    403 or 409 with nothing stored."""
    resolved = await resolve_create(deps, ctx, req)
    reservation = ReservationId("r-" + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)))
    now = datetime.now(UTC)

    def build(count: int) -> tuple[Instance, ...]:
        return new_instances(ctx, resolved, reservation, count, now)

    created = await deps.db.instances.create_within_quota(
        build, project_id=ctx.project_id, flavor=resolved.flavor, min_count=req.min_count,
        max_count=req.count, defaults=quota_defaults(deps.settings),
        request_id=ctx.request_id, group=resolved.boot.hints.group)
    result = CreateResult(reservation_id=reservation, instances=tuple(created))
    logger.info("instance.create: %d instance(s), reservation %s", len(result.instances),
                result.reservation_id)
    # Between min_count and the count made, the scheduler places as many as fit.
    min_count = req.min_count if req.min_count < len(result.instances) else None
    requests = tuple(boot_request(i, resolved.boot) for i in result.instances)
    try:
        await deps.conductor.build_instances(ctx, requests, min_count)
    except StratoError as exc:
        logger.error("cannot cast BuildInstances for %s: %s", result.reservation_id, exc)
        failed = [await _fail_unscheduled(deps.db, i, exc) for i in result.instances]
        return CreateResult(reservation_id=result.reservation_id, instances=tuple(failed))
    return result


# --- resolve: every lookup a create needs -----------------------------------------------

async def resolve_create(deps: ApiDeps, ctx: RequestContext,
                         req: CreateServers) -> ResolvedCreate:
    """Look up what ``req`` names, as the caller (and its project, which the servers
    and their ports belong to) sees it; nothing is written. In Nova's order: metadata
    and injected files against the project's quotas (403, Nova's QuotaError), the flavor
    and image (an unusable one ``InvalidReference``, 400, as Nova answers for a body's
    refs) and their fit, the key pair, the zone/host/node and server group, then the
    security groups and the NICs (Nova's 400s and 409s for what cannot be used)."""
    _check_quotas(req, await project_limits(deps, ctx.project_id))
    flavor = await _resolve_flavor(deps, ctx, req.flavor_id)
    image = await resolve_image(deps, ctx, req.image_ref)
    check_fit(flavor, image)
    key_data = await _key_data(deps, ctx, req.key_name)
    hints = await _hints(deps, ctx, req)
    groups = await _security_group_ids(deps, ctx.project_id, req.security_groups)
    networks = await _networks(deps, ctx.project_id, req.networks)
    return ResolvedCreate(request=req, flavor=flavor, boot=BootInputs(
        image=image, key_data=key_data, files=req.files, hints=hints, networks=networks,
        security_groups=groups))


def _check_quotas(req: CreateServers, limits: dict[str, int]) -> None:
    limit = limits["metadata_items"]
    if exceeds(limit, 0, len(req.metadata)):
        raise OverQuota(f"Quota exceeded for metadata_items: at most {limit} items allowed")
    limit = limits["injected_files"]
    if exceeds(limit, 0, len(req.files)):
        raise OverQuota(f"Quota exceeded for injected_files: at most {limit} personality "
                      "files allowed")
    path_limit = limits["injected_file_path_bytes"]
    size_limit = limits["injected_file_content_bytes"]
    for file in req.files:
        if exceeds(path_limit, 0, len(file.path.encode())):
            raise OverQuota(f"Personality file path exceeds maximum {path_limit} bytes")
        # The schema checked the contents are base64.
        if exceeds(size_limit, 0, len(base64.b64decode(file.contents, validate=True))):
            raise OverQuota(f"Personality file content exceeds maximum {size_limit} bytes")


async def _resolve_flavor(deps: ApiDeps, ctx: RequestContext, flavor_id: str) -> Flavor:
    try:
        flavor = await get_flavor(deps.db, ctx, flavor_id)
    except NotFound as exc:
        # A body's reference to something missing is a 400 in Nova, not a 404.
        raise InvalidReference(exc.message) from None
    if flavor.disabled:
        raise InvalidReference(f"Flavor {flavor_id} is disabled.")
    return flavor


async def resolve_image(deps: ApiDeps, ctx: RequestContext, ref: str | None) -> Image:
    """The active image a body's ``imageRef`` names, with its kernel and ramdisk (if
    any) checked the same way; the reference's form is checked here, after the lookups
    Nova makes before it (400 ``Invalid`` for a missing or malformed one, 400
    ``InvalidReference`` for an image the caller cannot boot)."""
    if not ref:
        # Booting from a volume would allow this; strato has no volumes yet.
        raise Invalid("Missing imageRef attribute")
    image_id = ref_id(ref)
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


def check_fit(flavor: Flavor, image: Image) -> None:
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


async def _key_data(deps: ApiDeps, ctx: RequestContext, key_name: str | None) -> str | None:
    """The public key of the caller's key pair ``key_name``; ``Invalid`` (400, Nova's
    message) if the caller has none of that name."""
    if key_name is None:
        return None
    try:
        return (await deps.db.key_pairs.get(ctx.user_id, key_name)).public_key
    except NotFound:
        raise Invalid("Invalid key_name provided.") from None


async def _hints(deps: ApiDeps, ctx: RequestContext, req: CreateServers) -> SchedulerHints:
    """Where the user asked the instances to go, checked against what exists.

    Forcing a host or node (``availability_zone`` ``zone:host:node``) is admin-only
    (403), and a zone, host or node that does not exist is a 400, as in Nova. The
    ``group`` hint must name a server group the caller can see (400 otherwise)."""
    if (req.force_host or req.force_node) and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:create:forced_host "
                        "to be performed.")
    if req.zone or req.force_host or req.force_node:
        await _check_placement(deps, req)
    group = None
    if req.group is not None:
        try:
            found = await deps.db.groups.get(req.group, project_id=ctx.visible_project)
        except NotFound:
            raise InvalidReference(f"Invalid server group: Instance group {req.group} "
                                   f"could not be found.") from None
        group = found.id
    return SchedulerHints(availability_zone=req.zone, force_host=req.force_host,
                          force_node=req.force_node, group=group)


async def _check_placement(deps: ApiDeps, req: CreateServers) -> None:
    """The zone is one an aggregate names, or the default zone while a node is in no
    zone; the host and node exist. Targeted reads: no full scan of the nodes."""
    nodes = deps.db.nodes
    zone, host, node = req.zone, req.force_host, req.force_node
    if zone and zone not in set((await deps.db.aggregates.host_zones()).values()) and not (
            zone == DEFAULT_ZONE and await nodes.exists(unzoned=True)):
        raise Invalid("The requested availability zone is not available")
    if host and not await nodes.exists(host=host):
        raise Invalid(f"Compute host {host} could not be found.")
    if node and not await nodes.exists(host=host, node=node):
        raise Invalid(f"Compute host node {host or '*'}/{node} could not be found.")


async def _security_group_ids(deps: ApiDeps, project: ProjectId,
                              wanted: Sequence[str]) -> tuple[str, ...]:
    if not wanted:
        return ()
    await deps.db.security_groups.ensure_default(project)
    groups = await deps.db.security_groups.list(project_id=project)
    return tuple(dict.fromkeys(_security_group_id(groups, name) for name in wanted))


def _security_group_id(groups: Sequence[SecurityGroup], wanted: str) -> str:
    """Nova's lookup: by name first (409 when two groups have it), then by id."""
    named = [group.id for group in groups if group.name == wanted]
    if len(named) > 1:
        raise Conflict(f"Multiple security groups found matching '{wanted}'. Use an ID to "
                       f"be more specific.")
    if named:
        return named[0]
    if any(group.id == wanted for group in groups):
        return wanted
    raise InvalidReference(f"Security group {wanted} not found.")


async def _networks(deps: ApiDeps, project: ProjectId,
                    choice: NetworkChoice) -> tuple[RequestedNetwork, ...]:
    if isinstance(choice, tuple):
        return tuple([await _requested(deps, project, entry) for entry in choice])
    if choice == "none":
        return ()
    return await _default_network(deps, project, auto=choice == "auto")


async def _default_network(deps: ApiDeps, project: ProjectId, *,
                           auto: bool) -> tuple[RequestedNetwork, ...]:
    """The one network the project can use (its own or shared); none is no NIC, unless
    the user asked for ``auto`` (400); more than one is ambiguous (409), as in Nova."""
    usable = await deps.db.networks.list_networks(viewer=project)
    if len(usable) > 1:
        raise Conflict("Multiple possible networks found, use a Network ID to be more "
                       "specific.")
    if not usable:
        if auto:
            raise InvalidReference(f"Unable to automatically allocate a network for "
                                   f"project {project}")
        return ()
    _check_has_subnet(usable[0])
    return (RequestedNetwork(network_id=usable[0].id),)


async def _requested(deps: ApiDeps, project: ProjectId,
                     entry: RequestedNetwork) -> RequestedNetwork:
    if entry.port_id:
        return await _usable_port(deps, project, entry.port_id)
    assert entry.network_id is not None  # the schema's rule: a network or a port
    try:
        network = await deps.db.networks.get_network(entry.network_id, viewer=project)
    except NotFound:
        raise InvalidReference(f"Network {entry.network_id} could not be found.") from None
    _check_has_subnet(network)
    if entry.fixed_ip:
        subnets = [await deps.db.networks.get_subnet(s, viewer=project)
                   for s in network.subnets]
        _check_fixed_ip(network.id, subnets, entry.fixed_ip)
    return entry


def _check_has_subnet(network: Network) -> None:
    if not network.subnets:
        raise InvalidReference(f"Network {network.id} requires a subnet in order to boot "
                               f"instances on.")


def _check_fixed_ip(network_id: str, subnets: Sequence[Subnet], ip: str) -> None:
    """A host address of one of the network's subnets, other than its gateway (what
    the port allocation will accept)."""
    address = ipaddress.ip_address(ip)
    subnet = next((s for s in subnets if address in ipaddress.ip_network(s.cidr)), None)
    if subnet is None:
        raise InvalidReference(f"Fixed IP address ({ip}) does not exist in network "
                               f"({network_id}).")
    net = ipaddress.ip_network(subnet.cidr)
    reserved = {net.network_address} | ({net.broadcast_address} if net.version == 4 else set())
    gateway = ipaddress.ip_address(subnet.gateway_ip) if subnet.gateway_ip else None
    if (net.num_addresses > 2 and address in reserved) or address == gateway:
        raise InvalidReference(f"Fixed IP address {ip} is not a valid address for the "
                               f"instance on network {network_id}.")


async def _usable_port(deps: ApiDeps, project: ProjectId, port_id: str) -> RequestedNetwork:
    """The user's own unbound port, with an address (Nova's PortNotFound, PortInUse and
    PortRequiresFixedIP otherwise); its network is the NIC's."""
    try:
        port = await deps.db.networks.get_port(port_id, viewer=project)
    except NotFound:
        raise InvalidReference(f"Port id {port_id} could not be found.") from None
    if port.device_id:
        raise Conflict(f"Port {port_id} is still in use.")
    if not port.fixed_ips:
        raise InvalidReference(f"Port {port_id} requires a FixedIP in order to be used.")
    return RequestedNetwork(network_id=port.network_id, port_id=port.id)


# --- build: the instance rows and the conductor's requests ------------------------------

def new_instances(ctx: RequestContext, resolved: ResolvedCreate, reservation: ReservationId,
                  count: int, now: datetime) -> tuple[Instance, ...]:
    """The ``count`` instance rows of a create (building, scheduling), launch index
    order."""
    req, image, hints = resolved.request, resolved.boot.image, resolved.boot.hints
    return tuple(
        Instance(id=InstanceId(new_uuid()),
                 # Nova names the servers of a batch "<name>-<1-based index>".
                 display_name=f"{req.name}-{index + 1}" if count > 1 else req.name,
                 project_id=ctx.project_id, user_id=ctx.user_id, image_ref=image.id,
                 flavor=resolved.flavor, vm_state=VmState.BUILDING,
                 task_state=TaskState.SCHEDULING, power_state=PowerState.NOSTATE,
                 availability_zone=hints.availability_zone, key_name=req.key_name,
                 metadata=dict(req.metadata), user_data=req.user_data,
                 config_drive=req.config_drive, reservation_id=reservation,
                 launch_index=index, created_at=now, updated_at=now,
                 access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6)
        for index in range(count))


def boot_request(instance: Instance, boot: BootInputs) -> BootRequest:
    """The request a host builds (or rebuilds) ``instance`` from: its row, plus what
    ``boot`` resolved. The one builder of :class:`~strato.domain.requests.BootRequest`."""
    kernel_id, ramdisk_id = _boot_files(boot.image)
    return BootRequest(
        kernel_id=kernel_id, ramdisk_id=ramdisk_id,
        networks=boot.networks, security_groups=boot.security_groups,
        instance_id=instance.id, project_id=instance.project_id, user_id=instance.user_id,
        name=instance.display_name, flavor=instance.flavor, image=boot.image,
        reservation_id=ReservationId(instance.reservation_id),
        launch_index=instance.launch_index, metadata=dict(instance.metadata),
        user_data=instance.user_data, key_name=instance.key_name, key_data=boot.key_data,
        config_drive=instance.config_drive, files=boot.files, hints=boot.hints)


def _boot_files(image: Image) -> tuple[ImageId | None, ImageId | None]:
    """The kernel and ramdisk image ids of an image :func:`resolve_image` accepted."""
    kernel, ramdisk = (image.properties.get(kind) or None for kind in BOOT_FILES)
    return (ImageId(kernel) if kernel else None, ImageId(ramdisk) if ramdisk else None)


async def _fail_unscheduled(db: Database, instance: Instance, exc: StratoError) -> Instance:
    fault = Fault(code=500, message="The build could not be started: the conductor is "
                  "unavailable.", details=str(exc), created_at=datetime.now(UTC))
    try:
        return await db.instances.update(
            instance.id, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=(TaskState.SCHEDULING,))
    except (InvalidState, NotFound):
        return instance  # deleted (or otherwise moved on) meanwhile: nothing to fail


def check_lock_and_state(instance: Instance, ctx: RequestContext, what: str,
                         vm_states: frozenset[VmState]) -> None:
    """Nova's check_instance_lock, then check_instance_state: the lock (admins pass), the
    vm_state, then no task in progress; 409s in Nova's words, ``what`` naming the act."""
    if instance.locked and not ctx.is_admin:
        raise InvalidState(f"Instance {instance.id} is locked")
    if instance.vm_state not in vm_states:
        raise InvalidState(f"Cannot '{what}' instance {instance.id} while it is in "
                           f"vm_state {instance.vm_state}")
    if instance.task_state is not None:
        raise InvalidState(f"Cannot '{what}' instance {instance.id} while it is in "
                           f"task_state {instance.task_state}")


async def get_server(deps: ApiDeps, ctx: RequestContext, instance_id: str) -> Instance:
    """One instance the caller may see; ``NotFound`` with Nova's message otherwise."""
    try:
        return await deps.db.instances.get(InstanceId(instance_id), project_id=ctx.visible_project)
    except NotFound:
        raise NotFound(f"Instance {instance_id} could not be found.") from None


async def server_vifs(deps: ApiDeps,
                      instances: Sequence[Instance]) -> dict[str, list[Vif]]:
    """Each instance's ports (by instance id), in one read for a whole page."""
    return await deps.db.networks.vifs_for_instances([i.id for i in instances])


async def list_servers(deps: ApiDeps, listing: ListServers) -> list[Instance]:
    """The instances a listing selects; an unknown ``marker`` is a 400 (as in Nova)."""
    if listing.query is None:
        return []
    try:
        return await deps.db.instances.list(listing.query)
    except NotFound:
        raise Invalid(f"marker [{listing.query.marker}] not found") from None


async def delete_server(deps: ApiDeps, ctx: RequestContext, instance: Instance) -> None:
    """Delete an instance for good, in any state; a second delete while the first runs
    is a no-op. An instance without a host is deleted here (freeing its allocations); one
    on a host is torn down by that host's compute service. (The route's checks, and the
    soft delete that may replace this, are ``actions.delete``.)"""
    marked = await _mark_deleting(deps, ctx, instance)
    if marked is None:
        return
    instance = marked
    await deps.db.actions.start_action(instance_id=instance.id, action="delete",
                                       request_id=ctx.request_id, user_id=ctx.user_id,
                                       project_id=ctx.project_id)
    if instance.host is None:
        await deps.db.instances.soft_delete(instance.id)
        logger.info("instance.delete: %s deleted locally (no host)", instance.id)
        return
    try:
        await deps.compute.terminate_instance(ctx, instance.host, instance.id)
    except StratoError:
        # Give the delete back so the client's retry is not a silent no-op.
        await deps.db.instances.update(instance.id, {"task_state": None},
                                       expected_task_state=(TaskState.DELETING,))
        raise
    logger.info("instance.delete: %s sent to compute %s", instance.id, instance.host)


async def console_output(deps: ApiDeps, ctx: RequestContext, instance_id: str,
                         length: int | None) -> str:
    """The guest's console, from the compute host it runs on; 409 while it has none."""
    instance = await get_server(deps, ctx, instance_id)
    if instance.host is None or instance.vm_state not in _CONSOLE_STATES:
        raise InvalidState(f"Cannot 'os-getConsoleOutput' instance {instance.id} while it "
                           f"is in vm_state {instance.vm_state}")
    return await deps.compute.console_output(ctx, instance.host, instance.id, length)


_CONSOLE_STATES = frozenset({VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED,
                             VmState.SUSPENDED, VmState.ERROR})


async def _mark_deleting(deps: ApiDeps, ctx: RequestContext,
                         instance: Instance) -> Instance | None:
    """Compare-and-swap the task state to DELETING; the updated instance, or ``None``
    when a delete is already under way. The returned copy is the row after the write,
    so its ``host`` reflects a build that placed the instance meanwhile."""
    for _ in range(_DELETE_ATTEMPTS):
        if instance.task_state == TaskState.DELETING:
            return None
        try:
            return await deps.db.instances.update(
                instance.id, {"task_state": TaskState.DELETING},
                expected_task_state=(instance.task_state,))
        except InvalidState:
            instance = await get_server(deps, ctx, instance.id)
    raise Conflict(f"Instance {instance.id} keeps changing state; try the delete again.")
