"""The network repository: networks, subnets, ports, IPAM (its adapter:
:mod:`strato.db._networks`)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Protocol

from strato.domain.ids import ProjectId
from strato.domain.networks import FixedIp, Network, Port, PortStatus, Subnet, Vif
from strato.domain.requests import RequestedNetwork

__all__ = ["NetworkRepo"]


class NetworkRepo(Protocol):
    """Networks, subnets and ports with their fixed IPs (IPAM), for the Network API.

    ``viewer`` is the caller's project (``None``: an admin, who sees everything); a
    network is visible to its project and, when shared, to every project; a subnet as
    its network; a port to its project. ``owner`` must own the resource:
    ``NetworkNotFound``/``SubnetNotFound``/``PortNotFound`` when it cannot see it,
    ``Forbidden`` when it sees it (a shared network) without owning it. Creates count
    against the project's ``network``/``subnet``/``port`` quota in their transaction
    (``OverQuota``). The errors are those of :mod:`strato.domain.networks`, named and
    worded as Neutron's.
    """

    async def create_network(self, network: Network) -> Network:
        """Insert ``network`` (``subnets`` ignored); stamps the timestamps."""
        ...

    async def get_network(self, network_id: str, *, viewer: ProjectId | None) -> Network:
        """The network with its subnet ids; ``NetworkNotFound`` unless visible."""
        ...

    async def list_networks(self, *, viewer: ProjectId | None) -> builtins.list[Network]:
        """Every visible network, by id."""
        ...

    async def update_network(self, network_id: str, changes: Mapping[str, object], *,
                             owner: ProjectId | None) -> Network:
        """Set ``name``, ``description``, ``admin_state_up``, ``shared`` or ``mtu``."""
        ...

    async def delete_network(self, network_id: str, *, owner: ProjectId | None) -> None:
        """Delete the network, its subnets and its DHCP ports; ``Conflict`` (NetworkInUse)
        while any other port is on it."""
        ...

    async def create_subnet(self, subnet: Subnet, *, owner: ProjectId | None) -> Subnet:
        """Add a (validated) subnet to a network ``owner`` owns; it takes the network's
        project. ``Invalid`` if its CIDR overlaps another subnet of the network."""
        ...

    async def get_subnet(self, subnet_id: str, *, viewer: ProjectId | None) -> Subnet:
        ...

    async def list_subnets(self, *, viewer: ProjectId | None) -> builtins.list[Subnet]:
        ...

    async def update_subnet(self, subnet_id: str, changes: Mapping[str, object], *,
                            owner: ProjectId | None) -> Subnet:
        """Set ``name``, ``description``, ``dns_nameservers`` (strings), ``host_routes``
        (``HostRoute``s) or ``enable_dhcp``."""
        ...

    async def delete_subnet(self, subnet_id: str, *, owner: ProjectId | None) -> None:
        """Delete the subnet; ``Conflict`` (SubnetInUse) while a non-DHCP port holds one
        of its addresses."""
        ...

    async def create_port(self, port: Port, *, fixed_ips: Sequence[FixedIp] | None,
                          viewer: ProjectId | None) -> Port:
        """Create the port (status DOWN) on a network ``viewer`` sees, with a random
        ``fa:16:3e`` MAC when ``port.mac_address`` is empty (``MacAddressInUse`` when a
        given one is in use on the network), its security groups (of its project, else
        ``SecurityGroupNotFound``) and fixed IPs: ``None`` allocates one address of the
        first subnet with a free one per IP version; otherwise each ``FixedIp`` asks for
        a subnet and/or an address (an empty field is "any"). ``IpAddressAlreadyAllocated``
        when an address is taken, ``IpAddressGenerationFailure`` when a subnet is full,
        ``Invalid`` for an address outside the subnets. All
        in one transaction: nothing is left half-created."""
        ...

    async def get_port(self, port_id: str, *, viewer: ProjectId | None) -> Port:
        ...

    async def list_ports(self, *, viewer: ProjectId | None) -> builtins.list[Port]:
        ...

    async def update_port(self, port_id: str, changes: Mapping[str, object], *,
                          fixed_ips: Sequence[FixedIp] | None = None,
                          security_groups: Sequence[str] | None = None,
                          owner: ProjectId | None) -> Port:
        """Set ``name``, ``description``, ``admin_state_up``, ``device_id``,
        ``device_owner`` or ``binding_host_id``; replace the security groups and/or
        re-allocate the fixed IPs (as :meth:`create_port`), in one transaction."""
        ...

    async def delete_port(self, port_id: str, *, owner: ProjectId | None) -> None:
        """Delete the port; its addresses are free again."""
        ...

    # An instance's ports (device_id = the instance), for the compute through the
    # conductor and for the API's server views.

    async def allocate_for_instance(self, instance_id: str, project_id: ProjectId, host: str,
                                    requested: Sequence[RequestedNetwork],
                                    security_groups: Sequence[str], *,
                                    device_owner: str) -> list[Vif]:
        """The instance's NICs, in request order, bound to ``host``: a new port (made by
        the build: ``auto_delete``) per network entry, or the user's own port bound to
        the instance. One transaction: first whatever the instance held before (an
        earlier attempt) is released, so allocating again is safe. Raises
        ``IpAddressGenerationFailure`` when a network is full, ``PortInUse`` when a
        port belongs to another device."""
        ...

    async def release_instance(self, instance_id: str) -> list[str]:
        """Delete the instance's ``auto_delete`` ports, unbind its other ports (device,
        host and status cleared); the ids of the networks that changed."""
        ...

    async def vifs_for_instances(self, instance_ids: Sequence[str]) -> dict[str, list[Vif]]:
        """Each instance's ports as VIFs, in creation order (every asked id is a key)."""
        ...

    async def ports_on_host(self, host: str) -> list[Port]:
        """The ports bound to ``host`` (``binding:host_id``), DHCP ports excepted."""
        ...

    async def set_ports_status(self, port_ids: Sequence[str], status: PortStatus) -> None:
        """Set the ports' status (``ACTIVE`` once plugged); unknown ids are skipped."""
        ...
