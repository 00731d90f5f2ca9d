"""Per-project quotas: the resources, Nova's defaults, and the checks, with Nova's words.

A project's limit for a resource is the first of: the project's own value
(``os-quota-sets``), the ``default`` quota class's value (``os-quota-class-sets``), the
deployment's default (:data:`DEFAULT_LIMITS`, ``metadata_items`` from the API settings).
``-1`` (:data:`UNLIMITED`) means no limit.

Usage of the counted resources (instances, cores, ram) is counted from the project's
instances every time it is needed, never kept in a counter, so it cannot drift; the
database counts and inserts in one transaction (``strato.db``), so two creates cannot
both take the last free place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from strato.domain.errors import Invalid, OverQuota

__all__ = ["COUNTED", "DEFAULT_CLASS", "DEFAULT_LIMITS", "RESOURCES", "UNLIMITED", "Usage",
           "allowed_count", "check_new_limit", "exceeds", "merge"]

UNLIMITED = -1

# The quota class whose values replace the configured defaults for every project.
DEFAULT_CLASS = "default"

# Nova's defaults ([quota] in nova.conf), in the order Nova's quota sets list them.
DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType({
    "instances": 10,
    "cores": 20,
    "ram": 51200,                          # MB
    "metadata_items": 128,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    # nova-network's quotas, which Nova's 2.1 answers still list (2.36 drops them) with
    # these defaults; settable and shown, never enforced (Neutron owns networking).
    "fixed_ips": UNLIMITED,
    "floating_ips": 10,
    "security_groups": 10,
    "security_group_rules": 20,
})
RESOURCES: tuple[str, ...] = tuple(DEFAULT_LIMITS)

# The resources whose usage is counted from the instances.
COUNTED: tuple[str, ...] = ("instances", "cores", "ram")


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What a project's non-deleted instances use: how many, their vCPUs and RAM (MB)."""

    instances: int = 0
    cores: int = 0
    ram: int = 0

    def of(self, resource: str) -> int:
        """The usage of ``resource``; 0 for a resource that is not counted."""
        return {"instances": self.instances, "cores": self.cores,
                "ram": self.ram}.get(resource, 0)


def merge(*layers: Mapping[str, int]) -> dict[str, int]:
    """The limits of every resource: each layer overrides the ones before it; keys that
    are not resources are ignored."""
    limits = dict(DEFAULT_LIMITS)
    for layer in layers:
        limits.update({k: v for k, v in layer.items() if k in DEFAULT_LIMITS})
    return limits


def exceeds(limit: int, used: int, requested: int) -> bool:
    """Whether ``requested`` more on top of ``used`` goes past ``limit``."""
    return limit != UNLIMITED and used + requested > limit


def allowed_count(limits: Mapping[str, int], used: Usage, *, vcpus: int, memory_mb: int,
                  min_count: int, max_count: int) -> int:
    """How many instances of ``vcpus``/``memory_mb`` a create of ``min_count`` to
    ``max_count`` may make: ``max_count`` when all fit, else as many as fit if that is at
    least ``min_count`` (Nova's rule for multi-create). ``OverQuota`` with Nova's
    message (``TooManyInstances``) when fewer than ``min_count`` fit."""
    per = {"instances": 1, "cores": vcpus, "ram": memory_mb}
    requested = {r: max_count * per[r] for r in COUNTED}
    # Nova names the resources over quota in alphabetical order.
    overs = sorted(r for r in COUNTED if exceeds(limits[r], used.of(r), requested[r]))
    if not overs:
        return max_count
    allowed = max_count
    for resource in COUNTED:
        if limits[resource] != UNLIMITED and per[resource] > 0:
            headroom = max(0, limits[resource] - used.of(resource))
            allowed = min(allowed, headroom // per[resource])
    if allowed >= min_count:
        return allowed
    shown = {**{r: str(n) for r, n in requested.items()},
             "instances": str(min_count) if min_count == max_count
             else f"{min_count}-{max_count}"}
    names = ", ".join(overs)
    raise OverQuota(
        f"Quota exceeded for {names}: Requested {', '.join(shown[r] for r in overs)}, "
        f"but already used {', '.join(str(used.of(r)) for r in overs)} of "
        f"{', '.join(str(limits[r]) for r in overs)} {names}")


def check_new_limit(resource: str, limit: int, used: int) -> None:
    """A new limit must not be below what the project already uses (unless unlimited);
    ``Invalid`` with Nova's message otherwise."""
    if limit != UNLIMITED and limit < used:
        raise Invalid(f"Quota limit {limit} for {resource} must be greater than or equal "
                      f"to already used and reserved {used}.")
