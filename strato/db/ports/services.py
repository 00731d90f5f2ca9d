"""The service repository: heartbeats, enabled/disabled (its adapter:
:mod:`strato.db._services`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from strato.domain.ids import HostName

__all__ = ["ServiceRecord", "ServiceRepo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRecord:
    id: int
    binary: str
    host: HostName
    topic: str
    last_seen: datetime | None
    disabled: bool
    disabled_reason: str | None
    is_up: bool


class ServiceRepo(Protocol):
    async def heartbeat(self, *, binary: str, host: HostName, topic: str) -> None:
        """Record that the service is alive now (creates it on first call)."""
        ...

    async def list(self, *, binary: str | None = None) -> list[ServiceRecord]: ...

    async def set_disabled(self, service_id: int, disabled: bool,
                           reason: str | None = None) -> ServiceRecord: ...
