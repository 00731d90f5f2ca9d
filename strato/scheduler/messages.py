"""Messages the scheduler serves (topic ``scheduler``)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.ids import HostName
from strato.domain.requests import BootRequest

__all__ = ["SelectDestinations", "TOPIC"]

TOPIC = "scheduler"


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectDestinations:
    """Choose and claim a node for every request, all or none (returns
    ``list[Selection]`` in request order, or raises ``NoValidHost`` with the reasons)."""

    requests: tuple[BootRequest, ...]
    exclude_hosts: tuple[HostName, ...] = ()
    alternates: int = 2
