"""``/v2.1/os-server-groups`` request bodies and list queries -> domain values.

The create body is Nova's 2.1 schema: ``name`` (1 to 255 printable characters, no
leading or trailing whitespace) and ``policies``, a list of exactly one policy; nothing
else. Nova accepts the soft policies only from microversion 2.15; strato speaks only 2.1
and accepts all four policies there (the one deviation from Nova's 2.1 schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.datastructures import QueryParams

from strato.api.bodies import parse_model
from strato.api.fields import MAX_DB_INT, Name
from strato.api.paging import MAX_LIMIT, query_count
from strato.domain.groups import GroupPolicy

__all__ = ["GroupCreate", "GroupListing", "POLICIES", "parse_create", "parse_listing"]

# Every policy a group may have, in the order error messages list them.
POLICIES: tuple[str, ...] = tuple(policy.value for policy in GroupPolicy)

# The spellings of "no" that turn ``all_projects`` off (any other value, empty included,
# turns it on: Nova looks only at whether the parameter is present).
_FALSE = frozenset({"false", "0", "off", "no", "f", "n"})


def _one_policy(value: list[str]) -> list[str]:
    if len(value) != 1:
        raise ValueError(f"Exactly one policy is required, one of {list(POLICIES)}")
    if value[0] not in POLICIES:
        raise ValueError(f"'{value[0]}' is not one of {list(POLICIES)}")
    return value


class _GroupBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name
    policies: Annotated[list[str], AfterValidator(_one_policy)]


class _CreateBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    server_group: _GroupBody


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupCreate:
    """A validated ``POST /os-server-groups`` body."""

    name: str
    policy: GroupPolicy


def parse_create(body: Any) -> GroupCreate:
    """``{"server_group": {"name": ..., "policies": [policy]}}``; ``Invalid`` (400)
    names the first bad field."""
    group = parse_model(_CreateBody, body).server_group
    return GroupCreate(name=group.name, policy=GroupPolicy(group.policies[0]))


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupListing:
    """What ``GET /os-server-groups`` asked for."""

    all_projects: bool
    limit: int
    offset: int


def parse_listing(params: QueryParams, *, is_admin: bool) -> GroupListing:
    """The list query: ``limit`` and ``offset`` (non-negative integers, else ``Invalid``)
    and ``all_projects``, which only an admin may use (ignored for others, as Nova).
    A ``limit`` of 0 or above :data:`MAX_LIMIT` means :data:`MAX_LIMIT` (Nova's
    ``common.limited``)."""
    # Past the largest row count there is nothing to skip to; the database's integer
    # types need not hold the client's number.
    limit = query_count(params, "limit", cap=MAX_LIMIT) or MAX_LIMIT
    offset = query_count(params, "offset", cap=MAX_DB_INT) or 0
    raw = params.get("all_projects")
    everyone = is_admin and raw is not None and raw.strip().lower() not in _FALSE
    return GroupListing(all_projects=everyone, limit=limit, offset=offset)

