"""Messages the scheduler serves (topic ``scheduler``)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.ids import HostName, InstanceId
from strato.domain.requests import BootRequest, Selection

__all__ = ["FANOUT_TOPIC", "HostsChanged", "Placements", "Refusal", "SelectDestinations",
           "TOPIC"]

TOPIC = "scheduler"
# Published to every scheduler: something its host-state cache reads changed.
FANOUT_TOPIC = "scheduler_fanout"


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectDestinations:
    """Choose and claim a node for every request (returns :class:`Placements`).

    All of them, or raise ``NoValidHost`` with the reasons; with ``min_count``, at least
    that many (the others are refused, each with its reasons).
    """

    requests: tuple[BootRequest, ...]
    exclude_hosts: tuple[HostName, ...] = ()
    min_count: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """An instance of a multi-create that did not fit: why, for users and operators."""

    instance_id: InstanceId
    message: str
    details: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Placements:
    selections: tuple[Selection, ...]
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HostsChanged:
    """An operator changed what placement reads (a service enabled or disabled, an
    aggregate or its zone): read the hosts again before the next decision, instead of
    up to ``host_refresh_interval`` later (Nova's scheduler fanout updates)."""

    reason: str
