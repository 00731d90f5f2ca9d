"""What the server routes do, without HTTP: create, read, list and delete servers.

Create follows the first steps of Nova's boot path: check the requested networks, ports
and security groups against the Network API (every 400/409 before anything is written),
write the instance rows (building, scheduling) and their "create" actions in one
transaction, which first counts the project's usage against its quotas (as many servers
as fit, down to ``min_count``, else 403), then cast one ``BuildInstances`` to the
conductor and return at once. Delete marks the instance ``deleting`` with a
compare-and-swap, so a build racing it loses, and either deletes locally (never
scheduled) or asks the instance's compute host to tear it down.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from strato.api.deps import ApiDeps
from strato.api.quotas.service import quota_defaults
from strato.api.servers.schemas import (
    CreateServers,
    ListServers,
    NetworkChoice,
    Networking,
    to_boot_request,
)
from strato.db.uow import Database
from strato.domain.context import RequestContext
from strato.domain.errors import (
    Conflict,
    Invalid,
    InvalidReference,
    InvalidState,
    NotFound,
    StratoError,
)
from strato.domain.ids import InstanceId, ProjectId, ReservationId, new_uuid
from strato.domain.instances import Fault, Instance, PowerState, TaskState, VmState
from strato.domain.networks import Network, SecurityGroup, Subnet, Vif
from strato.domain.requests import RequestedNetwork
from strato.rpc.bus import Target
from strato.rpc.contracts.compute import TOPIC as COMPUTE
from strato.rpc.contracts.compute import GetConsoleOutput, TerminateInstance
from strato.rpc.contracts.conductor import TOPIC as CONDUCTOR
from strato.rpc.contracts.conductor import BuildInstances

__all__ = ["CreateResult", "create_servers", "delete_server", "get_server", "list_servers",
           "resolve_networking", "server_vifs"]

logger = logging.getLogger(__name__)

# A delete retries its compare-and-swap this often when a build moves the task state
# between our read and our write.
_DELETE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateResult:
    """The instances one create request made (launch index order)."""

    reservation_id: ReservationId
    instances: tuple[Instance, ...]


def _scope(ctx: RequestContext) -> ProjectId | None:
    """The project a caller's reads are limited to; an admin sees every project."""
    return None if ctx.is_admin else ctx.project_id


async def create_servers(deps: ApiDeps, ctx: RequestContext,
                         req: CreateServers) -> CreateResult:
    """Store ``req.count`` instances (building/scheduling), or as many as the project's
    quota allows down to ``req.min_count`` (``OverQuota`` and nothing stored below
    that), and ask the conductor to build them. If the conductor cannot be reached, the
    instances go to ERROR with a fault instead of staying in BUILD forever. The
    networks and security groups are resolved first (:func:`resolve_networking`): a
    bad one is a 400 or 409 with nothing stored."""
    networking = await resolve_networking(deps, ctx, req)
    reservation = ReservationId("r-" + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)))
    now = datetime.now(UTC)

    def build(count: int) -> tuple[Instance, ...]:
        return _new_instances(ctx, req, reservation, count, now)

    created = await deps.db.instances.create_within_quota(
        build, project_id=ctx.project_id, flavor=req.flavor, min_count=req.min_count,
        max_count=req.count, defaults=quota_defaults(deps.settings),
        request_id=ctx.request_id, group=req.hints.group)
    result = CreateResult(reservation_id=reservation, instances=tuple(created))
    logger.info("instance.create: %d instance(s), reservation %s", len(result.instances),
                result.reservation_id)
    # Between min_count and the count made, the scheduler places as many as fit.
    min_count = req.min_count if req.min_count < len(result.instances) else None
    message = BuildInstances(
        requests=tuple(to_boot_request(req, i, networking) for i in result.instances),
        min_count=min_count)
    try:
        await deps.bus.cast(Target(CONDUCTOR), message, ctx=ctx)
    except StratoError as exc:
        logger.error("cannot cast BuildInstances for %s: %s", result.reservation_id, exc)
        failed = [await _fail_unscheduled(deps.db, i, exc) for i in result.instances]
        return CreateResult(reservation_id=result.reservation_id, instances=tuple(failed))
    return result


async def resolve_networking(deps: ApiDeps, ctx: RequestContext,
                             req: CreateServers) -> Networking:
    """``req``'s security groups as ids and its NICs checked against the Network API,
    as the caller's project sees it (the project the servers and their ports belong
    to). Nothing is written; Nova's 400s and 409s for what cannot be used."""
    groups = await _security_group_ids(deps, ctx.project_id, req.security_groups)
    networks = await _networks(deps, ctx.project_id, req.networks)
    return Networking(networks=networks, security_groups=groups)


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


def _new_instances(ctx: RequestContext, req: CreateServers, reservation: ReservationId,
                   count: int, now: datetime) -> tuple[Instance, ...]:
    return tuple(
        Instance(id=InstanceId(new_uuid()),
                 # Nova names the servers of a batch "<name>-<1-based index>".
                 display_name=f"{req.name}-{index + 1}" if count > 1 else req.name,
                 project_id=ctx.project_id, user_id=ctx.user_id, image_ref=req.image.id,
                 flavor=req.flavor, vm_state=VmState.BUILDING,
                 task_state=TaskState.SCHEDULING, power_state=PowerState.NOSTATE,
                 availability_zone=req.hints.availability_zone, key_name=req.key_name,
                 metadata=dict(req.metadata), user_data=req.user_data,
                 config_drive=req.config_drive, reservation_id=reservation,
                 launch_index=index, created_at=now, updated_at=now)
        for index in range(count))


async def _fail_unscheduled(db: Database, instance: Instance, exc: StratoError) -> Instance:
    fault = Fault(code=500, message="The build could not be started: the conductor is "
                  "unavailable.", details=str(exc), created_at=datetime.now(UTC))
    try:
        return await db.instances.update(
            instance.id, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=(TaskState.SCHEDULING,))
    except (InvalidState, NotFound):
        return instance  # deleted (or otherwise moved on) meanwhile: nothing to fail


async def get_server(deps: ApiDeps, ctx: RequestContext, instance_id: str) -> Instance:
    """One instance the caller may see; ``NotFound`` with Nova's message otherwise."""
    try:
        return await deps.db.instances.get(InstanceId(instance_id), project_id=_scope(ctx))
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
        await deps.bus.cast(Target(COMPUTE, server=instance.host),
                            TerminateInstance(instance_id=instance.id), ctx=ctx)
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
    text: str = await deps.bus.call(
        Target(COMPUTE, server=instance.host),
        GetConsoleOutput(instance_id=instance.id, length=length), ctx=ctx, returns=str,
        timeout=30.0)
    return text


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
