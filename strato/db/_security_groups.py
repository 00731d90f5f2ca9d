"""``SecurityGroupRepo`` on SQL: security groups, their rules, and what the data plane
reads about them (the rules of a port's groups, a group's member addresses).

Every quota-checked write (a group with its egress rules, a rule) counts the project's
groups and rules and inserts in one write transaction under the project's quota lock
(:func:`strato.db._quotas.lock_project`), as server groups do; the duplicate-rule check
runs there too, so two identical concurrent rule creates cannot both succeed. The
default group is created the same way: the first caller inserts it, every later one
(or a concurrent one, waiting on the lock) finds it.

Rule rows belong to the project of their group. Deleting a group deletes its rules and
every rule of other groups that names it as ``remote_group_id`` (Neutron's cascade),
explicitly: SQLite enforces ``ON DELETE CASCADE`` only with foreign keys on.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._quotas import lock_project
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import (
    DEFAULT_SECURITY_GROUP,
    Direction,
    SecurityGroup,
    SecurityGroupRule,
)
from strato.domain.security_groups import (
    RuleSpec,
    SecurityGroupCannotRemoveDefault,
    SecurityGroupCannotUpdateDefault,
    SecurityGroupDefaultAlreadyExists,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    SecurityGroupQuotaExceeded,
    SecurityGroupRuleExists,
    SecurityGroupRuleNotFound,
    is_default_name,
    same_rule,
)

__all__ = ["SqlSecurityGroupRepo"]

_G = t.security_groups.c
_R = t.security_group_rules.c
_P = t.port_security_groups.c
_A = t.ip_allocations.c

_DEFAULT_DESCRIPTION = "Default security group"


def _rule_from_row(row: Any) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=row.id, security_group_id=row.security_group_id,
        project_id=ProjectId(row.project_id), direction=Direction(row.direction),
        ethertype=row.ethertype, protocol=row.protocol, port_range_min=row.port_range_min,
        port_range_max=row.port_range_max, remote_ip_prefix=row.remote_ip_prefix,
        remote_group_id=row.remote_group_id, description=row.description,
        created_at=row.created_at)


def _group_from_row(row: Any, rules: Sequence[SecurityGroupRule]) -> SecurityGroup:
    return SecurityGroup(id=row.id, project_id=ProjectId(row.project_id), name=row.name,
                         description=row.description, rules=tuple(rules),
                         created_at=row.created_at, updated_at=row.updated_at)


def _spec(rule: SecurityGroupRule) -> RuleSpec:
    return RuleSpec(direction=rule.direction.value, ethertype=rule.ethertype,
                    protocol=rule.protocol, port_range_min=rule.port_range_min,
                    port_range_max=rule.port_range_max,
                    remote_ip_prefix=rule.remote_ip_prefix,
                    remote_group_id=rule.remote_group_id)


def _rule_values(rule: SecurityGroupRule, now: datetime) -> dict[str, Any]:
    return {"id": rule.id, "security_group_id": rule.security_group_id,
            "project_id": rule.project_id, "direction": rule.direction.value,
            "ethertype": rule.ethertype, "protocol": rule.protocol,
            "port_range_min": rule.port_range_min, "port_range_max": rule.port_range_max,
            "remote_ip_prefix": rule.remote_ip_prefix,
            "remote_group_id": rule.remote_group_id, "description": rule.description,
            "created_at": now}


def _neutron_rules(group_id: str, project_id: ProjectId, *,
                   ingress_from_self: bool) -> builtins.list[SecurityGroupRule]:
    """Neutron's rules of a new group: egress anywhere over IPv4 and IPv6 and, for the
    default group, ingress from the group's own members."""
    rules = []
    directions = [Direction.EGRESS] + ([Direction.INGRESS] if ingress_from_self else [])
    for direction in directions:
        for ethertype in ("IPv4", "IPv6"):
            remote = group_id if direction is Direction.INGRESS else None
            rules.append(SecurityGroupRule(
                id=new_uuid(), security_group_id=group_id, project_id=project_id,
                direction=direction, ethertype=ethertype, remote_group_id=remote))
    return rules


async def _rules_of(conn: AsyncConnection,
                    group_ids: Iterable[str]) -> dict[str, list[SecurityGroupRule]]:
    """The rules of each group, oldest first."""
    rules: dict[str, list[SecurityGroupRule]] = defaultdict(list)
    ids = list(group_ids)
    if ids:
        rows = await conn.execute(sa.select(t.security_group_rules)
                                  .where(_R.security_group_id.in_(ids))
                                  .order_by(_R.created_at, _R.id))
        for row in rows:
            rules[row.security_group_id].append(_rule_from_row(row))
    return rules


async def _count(conn: AsyncConnection, table: sa.Table, project_id: ProjectId) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(table)
                                   .where(table.c.project_id == project_id))).scalar_one())


async def _check_quota(conn: AsyncConnection, project_id: ProjectId, *, groups: int,
                       rules: int, group_limit: int, rule_limit: int) -> None:
    """``SecurityGroupQuotaExceeded`` if adding ``groups`` groups and ``rules`` rules
    would pass a (non-negative) limit. The caller holds the project's lock."""
    if groups and group_limit >= 0 and \
            await _count(conn, t.security_groups, project_id) + groups > group_limit:
        raise SecurityGroupQuotaExceeded("security_group")
    if rules and rule_limit >= 0 and \
            await _count(conn, t.security_group_rules, project_id) + rules > rule_limit:
        raise SecurityGroupQuotaExceeded("security_group_rule")


async def _group_row(conn: AsyncConnection, group_id: str,
                     project_id: ProjectId | None) -> Any:
    query = sa.select(t.security_groups).where(_G.id == group_id)
    if project_id is not None:
        query = query.where(_G.project_id == project_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise SecurityGroupNotFound(group_id)
    return row


async def _default_row(conn: AsyncConnection, project_id: ProjectId) -> Any:
    return (await conn.execute(
        sa.select(t.security_groups)
        .where(_G.project_id == project_id, _G.name == DEFAULT_SECURITY_GROUP)
        .order_by(_G.created_at, _G.id).limit(1))).first()


class SqlSecurityGroupRepo:
    """Groups in ``security_groups`` + ``security_group_rules`` (see
    :class:`strato.db.ports.security_groups.SecurityGroupRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _load(self, conn: AsyncConnection, row: Any) -> SecurityGroup:
        rules = await _rules_of(conn, [row.id])
        return _group_from_row(row, rules[row.id])

    async def ensure_default(self, project_id: ProjectId) -> SecurityGroup:
        """The project's ``default`` group, created with Neutron's four rules when it
        is missing (no quota check; it counts afterwards). Safe to race."""
        async with self._store.read() as conn:
            row = await _default_row(conn, project_id)
            if row is not None:
                return await self._load(conn, row)
        now = self._store.now()
        async with self._store.write() as conn:
            await lock_project(conn, project_id)
            row = await _default_row(conn, project_id)
            if row is not None:
                return await self._load(conn, row)
            group_id = new_uuid()
            await conn.execute(t.security_groups.insert().values(
                id=group_id, project_id=project_id, name=DEFAULT_SECURITY_GROUP,
                description=_DEFAULT_DESCRIPTION, created_at=now, updated_at=now))
            rules = _neutron_rules(group_id, project_id, ingress_from_self=True)
            await conn.execute(t.security_group_rules.insert(),
                               [_rule_values(r, now) for r in rules])
            row = await _group_row(conn, group_id, None)
            return await self._load(conn, row)

    async def create(self, *, project_id: ProjectId, name: str, description: str,
                     group_limit: int, rule_limit: int) -> SecurityGroup:
        """A new group with Neutron's two egress rules; quota-checked for both, all
        or nothing."""
        if is_default_name(name):
            raise SecurityGroupDefaultAlreadyExists()
        now = self._store.now()
        group_id = new_uuid()
        rules = _neutron_rules(group_id, project_id, ingress_from_self=False)
        async with self._store.write() as conn:
            await lock_project(conn, project_id)
            await _check_quota(conn, project_id, groups=1, rules=len(rules),
                               group_limit=group_limit, rule_limit=rule_limit)
            await conn.execute(t.security_groups.insert().values(
                id=group_id, project_id=project_id, name=name, description=description,
                created_at=now, updated_at=now))
            await conn.execute(t.security_group_rules.insert(),
                               [_rule_values(r, now) for r in rules])
            return await self._load(conn, await _group_row(conn, group_id, None))

    async def get(self, group_id: str, *,
                  project_id: ProjectId | None = None) -> SecurityGroup:
        """The group with its rules; ``SecurityGroupNotFound`` if unknown or (with
        ``project_id``) of another project."""
        async with self._store.read() as conn:
            return await self._load(conn, await _group_row(conn, group_id, project_id))

    async def list(self, *, project_id: ProjectId | None = None) -> list[SecurityGroup]:
        """The groups of ``project_id`` (all when None), oldest first, with rules."""
        query = sa.select(t.security_groups).order_by(_G.created_at, _G.id)
        if project_id is not None:
            query = query.where(_G.project_id == project_id)
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
            rules = await _rules_of(conn, [row.id for row in rows])
        return [_group_from_row(row, rules[row.id]) for row in rows]

    async def update(self, group_id: str, *, project_id: ProjectId | None = None,
                     name: str | None = None,
                     description: str | None = None) -> SecurityGroup:
        """Rename and/or describe the group (``None`` leaves a field alone). The
        default group keeps its name; no other group may take it."""
        async with self._store.write() as conn:
            row = await _group_row(conn, group_id, project_id)
            if name is not None and name != row.name:
                if row.name == DEFAULT_SECURITY_GROUP:
                    raise SecurityGroupCannotUpdateDefault()
                if is_default_name(name):
                    raise SecurityGroupDefaultAlreadyExists()
            values: dict[str, Any] = {"updated_at": self._store.now()}
            if name is not None:
                values["name"] = name
            if description is not None:
                values["description"] = description
            await conn.execute(sa.update(t.security_groups).where(_G.id == group_id)
                               .values(values))
            return await self._load(conn, await _group_row(conn, group_id, None))

    async def delete(self, group_id: str, *, project_id: ProjectId | None = None,
                     allow_default: bool = False) -> None:
        """Delete the group, its rules and the rules naming it as remote group.
        ``SecurityGroupCannotRemoveDefault`` for the default group unless
        ``allow_default`` (Neutron lets an admin); ``SecurityGroupInUse`` while a port
        has it."""
        async with self._store.write() as conn:
            row = await _group_row(conn, group_id, project_id)
            if row.name == DEFAULT_SECURITY_GROUP and not allow_default:
                raise SecurityGroupCannotRemoveDefault()
            used = (await conn.execute(sa.select(_P.port_id)
                                       .where(_P.security_group_id == group_id)
                                       .limit(1))).first()
            if used is not None:
                raise SecurityGroupInUse(group_id)
            await conn.execute(sa.delete(t.security_group_rules).where(
                sa.or_(_R.security_group_id == group_id, _R.remote_group_id == group_id)))
            await conn.execute(sa.delete(t.security_groups).where(_G.id == group_id))

    async def add_rule(self, rule: SecurityGroupRule, *, project_id: ProjectId | None = None,
                       limit: int) -> SecurityGroupRule:
        """Store a (validated) rule in its group, which must be visible to
        ``project_id`` (``SecurityGroupNotFound``), as must its remote group. The
        rule belongs to the group's project and counts against its quota.
        ``SecurityGroupRuleExists`` for a rule matching the same traffic."""
        now = self._store.now()
        async with self._store.write() as conn:
            group = await _group_row(conn, rule.security_group_id, project_id)
            owner = ProjectId(group.project_id)
            await lock_project(conn, owner)
            if rule.remote_group_id is not None:
                await _group_row(conn, rule.remote_group_id, project_id)
            existing = (await _rules_of(conn, [group.id]))[group.id]
            spec = _spec(rule)
            clash = next((r for r in existing if same_rule(_spec(r), spec)), None)
            if clash is not None:
                raise SecurityGroupRuleExists(clash.id)
            await _check_quota(conn, owner, groups=0, rules=1, group_limit=-1,
                               rule_limit=limit)
            stored = replace(rule, security_group_id=group.id, project_id=owner,
                             created_at=now)
            await conn.execute(t.security_group_rules.insert().values(
                _rule_values(stored, now)))
            await conn.execute(sa.update(t.security_groups).where(_G.id == group.id)
                               .values(updated_at=now))
        return stored

    async def get_rule(self, rule_id: str, *,
                       project_id: ProjectId | None = None) -> SecurityGroupRule:
        """One rule; ``SecurityGroupRuleNotFound`` if unknown or of another project."""
        query = sa.select(t.security_group_rules).where(_R.id == rule_id)
        if project_id is not None:
            query = query.where(_R.project_id == project_id)
        async with self._store.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise SecurityGroupRuleNotFound(rule_id)
        return _rule_from_row(row)

    async def list_rules(self, *,
                         project_id: ProjectId | None = None) -> builtins.list[SecurityGroupRule]:
        """The rules of ``project_id`` (all when None), oldest first."""
        query = sa.select(t.security_group_rules).order_by(_R.created_at, _R.id)
        if project_id is not None:
            query = query.where(_R.project_id == project_id)
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_rule_from_row(row) for row in rows]

    async def delete_rule(self, rule_id: str, *, project_id: ProjectId | None = None) -> None:
        """Delete one rule; ``SecurityGroupRuleNotFound`` as :meth:`get_rule`."""
        query = sa.select(_R.security_group_id).where(_R.id == rule_id)
        if project_id is not None:
            query = query.where(_R.project_id == project_id)
        async with self._store.write() as conn:
            group_id = (await conn.execute(query)).scalar()
            if group_id is None:
                raise SecurityGroupRuleNotFound(rule_id)
            await conn.execute(sa.delete(t.security_group_rules).where(_R.id == rule_id))
            await conn.execute(sa.update(t.security_groups).where(_G.id == group_id)
                               .values(updated_at=self._store.now()))

    async def rules_for_ports(
            self, port_ids: Sequence[str]) -> dict[str, builtins.list[SecurityGroupRule]]:
        """The rules of every group each port is in (every asked port is a key; a
        port in no group has no rules), ordered by group then rule age."""
        result: dict[str, builtins.list[SecurityGroupRule]] = {port_id: [] for port_id in port_ids}
        if not port_ids:
            return result
        async with self._store.read() as conn:
            rows = (await conn.execute(
                sa.select(_P.port_id, _P.security_group_id)
                .where(_P.port_id.in_(list(port_ids)))
                .order_by(_P.port_id, _P.security_group_id))).all()
            rules = await _rules_of(conn, {row.security_group_id for row in rows})
        for row in rows:
            result[row.port_id].extend(rules[row.security_group_id])
        return result

    async def members(self, group_id: str) -> builtins.list[tuple[str, str]]:
        """``(port_id, ip_address)`` of every fixed IP of the group's ports, by port
        then address: the addresses a ``remote_group_id`` rule admits. An unknown
        group has none."""
        async with self._store.read() as conn:
            rows = await conn.execute(
                sa.select(_P.port_id, _A.ip_address)
                .join(t.ip_allocations, _A.port_id == _P.port_id)
                .where(_P.security_group_id == group_id)
                .order_by(_P.port_id, _A.ip_address))
            return [(row.port_id, row.ip_address) for row in rows]
