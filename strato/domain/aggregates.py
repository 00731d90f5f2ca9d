"""Host aggregates and availability zones.

An aggregate is a named set of hosts with metadata. The metadata key
``availability_zone`` puts its hosts in that zone; a host in no such aggregate is in the
default zone (``nova``, as in Nova). A host may be in several aggregates but in one zone
only: adding it to a second zone is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.ids import HostName

__all__ = ["AZ_KEY", "Aggregate", "DEFAULT_ZONE", "INTERNAL_ZONE"]

AZ_KEY = "availability_zone"
DEFAULT_ZONE = "nova"
# Nova's zone for hosts that run no compute service (listed only in the detailed view).
INTERNAL_ZONE = "internal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    id: int
    uuid: str
    name: str
    hosts: tuple[HostName, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: datetime
    updated_at: datetime | None = None

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)
