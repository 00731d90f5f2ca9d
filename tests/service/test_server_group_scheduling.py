"""Server groups through the whole create path: ``os:scheduler_hints: {"group": ...}`` at
the API, the group filters and weighers in the scheduler (with the "no valid host" they
explain), multi-create, and the compute's atomic re-check of the hard policies when a
build starts, which is what keeps two racing schedulers from breaking anti-affinity."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.api import ApiDeps, StaticTokenAuth, create_app
from strato.bootstrap import run_scheduler
from strato.client import ApiClient, ApiError, ServerView
from strato.db.ports import GroupMembers
from strato.domain.ids import GroupId, InstanceId
from strato.image.store import ImageStore
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud

GROUPS = "/v2.1/os-server-groups"
BUILD_EVENT = "compute__do_build_and_run_instance"
# 1024 MB at the default RAM allocation ratio 1.5 holds exactly three m1.tiny (512 MB).
THREE_TINY = 1024
# A host name in a message (h1, h2, ...): users must never see one.
HOST_NAME = re.compile(r"\bh\d+\b")


async def _group(h: Harness, policy: str, name: str = "grp") -> str:
    resp = await h.client.request("POST", GROUPS, json={
        "server_group": {"name": name, "policies": [policy]}})
    group_id: str = resp.json()["server_group"]["id"]
    return group_id


async def _members(h: Harness, group_id: str) -> list[str]:
    resp = await h.client.request("GET", f"{GROUPS}/{group_id}")
    members: list[str] = resp.json()["server_group"]["members"]
    return members


async def _post(h: Harness, name: str, group: Any, *, client: ApiClient | None = None,
                image: str | None = None, **server: Any) -> httpx.Response:
    """``POST /servers`` of an m1.tiny into ``group`` (the hint as given)."""
    body = {"server": {"name": name, "imageRef": image or h.image_id,
                       "flavorRef": h.flavors["m1.tiny"], **server},
            "os:scheduler_hints": {"group": group}}
    return await (client or h.client).request("POST", "/v2.1/servers", json=body)


async def _boot(h: Harness, name: str, group: str, **server: Any) -> ServerView:
    resp = await _post(h, name, group, **server)
    return await h.client.wait_for_status(resp.json()["server"]["id"], {"ACTIVE", "ERROR"})


async def _batch(h: Harness, name: str, group: str, *, min_count: int,
                 max_count: int) -> list[ServerView]:
    """A multi-create into ``group``, each of its servers once it is done building."""
    await _post(h, name, group, min_count=min_count, max_count=max_count)
    servers = await h.client.list_servers(name=f"^{name}-")
    assert len(servers) == max_count
    return list(await asyncio.gather(*(
        h.client.wait_for_status(s.id, {"ACTIVE", "ERROR"}) for s in servers)))


async def _allocations(h: Harness, server_id: str) -> list[Any]:
    return list(await h.cloud.db.nodes.allocations(InstanceId(server_id)))


async def _create_action(h: Harness, server_id: str, request_id: str) -> dict[str, Any]:
    resp = await h.client.request(
        "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
        headers={"X-Strato-Action-Extras": "1"})  # with each event's host
    action: dict[str, Any] = resp.json()["instanceAction"]
    return action


def _anti_affinity_refusal(hosts: int) -> str:
    return (f"No valid host was found. {hosts} hosts: {hosts} removed by "
            f"ServerGroupAntiAffinityFilter (a member of the anti-affinity group is there "
            f"already).")


# --- anti-affinity ----------------------------------------------------------------------

async def test_anti_affinity_puts_each_member_on_its_own_host_then_refuses(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3, memory_mb=THREE_TINY)) as h:
        group = await _group(h, "anti-affinity")
        placed = [await _boot(h, f"anti-{i}", group) for i in range(3)]
        assert [s.status for s in placed] == ["ACTIVE"] * 3
        assert sorted(s.host or "" for s in placed) == ["h1", "h2", "h3"]

        # Every host still has room for two more m1.tiny: only the policy says no.
        fourth = await _boot(h, "anti-3", group)
        assert fourth.status == "ERROR" and fourth.host is None
        assert fourth.fault is not None and fourth.fault["code"] == 500
        assert fourth.fault["message"] == _anti_affinity_refusal(3)
        assert not HOST_NAME.search(fourth.fault["message"])
        # The admin sees host by host where the members are.
        details = fourth.fault["details"]
        for host in ("h1", "h2", "h3"):
            assert (f"{host} (node {host}): ServerGroupAntiAffinityFilter: anti-affinity "
                    f"group has 1 member(s) here already (at most 1)") in details
        assert await _allocations(h, fourth.id) == []

        # Members are the group's live (not deleted) instances, in the order they joined:
        # the one in ERROR is one too until it is deleted.
        assert await _members(h, group) == [s.id for s in (*placed, fourth)]
        await h.client.delete_server(fourth.id)
        await h.client.wait_for_status(fourth.id, {"DELETED"})
        assert await _members(h, group) == [s.id for s in placed]


async def test_anti_affinity_multi_create_spreads_or_fails_as_min_count_says(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3, memory_mb=THREE_TINY)) as h:
        # Three at once on three hosts: one each.
        group = await _group(h, "anti-affinity", "fits")
        servers = await _batch(h, "fits", group, min_count=3, max_count=3)
        assert [s.status for s in servers] == ["ACTIVE"] * 3
        assert sorted(s.host or "" for s in servers) == ["h1", "h2", "h3"]
        for s in servers:
            await h.client.delete_server(s.id)
        await asyncio.gather(*(h.client.wait_for_status(s.id, {"DELETED"}) for s in servers))

        # Up to four, at least three: three are built, the fourth is refused and says why.
        group = await _group(h, "anti-affinity", "some")
        servers = await _batch(h, "some", group, min_count=3, max_count=4)
        active = [s for s in servers if s.status == "ACTIVE"]
        [failed] = [s for s in servers if s.status == "ERROR"]
        assert sorted(s.host or "" for s in active) == ["h1", "h2", "h3"]
        assert failed.fault is not None
        assert failed.fault["message"] == _anti_affinity_refusal(3)
        assert await _allocations(h, failed.id) == []
        for s in servers:
            await h.client.delete_server(s.id)
        await asyncio.gather(*(h.client.wait_for_status(s.id, {"DELETED"}) for s in servers))

        # Exactly four on three hosts: none is built, and none holds anything.
        group = await _group(h, "anti-affinity", "all")
        servers = await _batch(h, "all", group, min_count=4, max_count=4)
        assert [s.status for s in servers] == ["ERROR"] * 4
        for s in servers:
            assert s.fault is not None
            assert s.fault["message"].startswith(_anti_affinity_refusal(3))
            assert "Only 3 of the 4 instances requested could be placed" in \
                s.fault["message"]
            assert not HOST_NAME.search(s.fault["message"])
            assert await _allocations(h, s.id) == []
        assert all(u.instances == 0 for u in await h.cloud.db.nodes.usages())
        for host in ("h1", "h2", "h3"):
            assert await h.driver(host).list_instances() == []


# --- affinity ---------------------------------------------------------------------------

async def test_affinity_keeps_members_together_and_refuses_when_their_host_is_full(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3, memory_mb=THREE_TINY)) as h:
        group = await _group(h, "affinity")
        placed = [await _boot(h, f"aff-{i}", group) for i in range(3)]
        assert [s.status for s in placed] == ["ACTIVE"] * 3
        # Without the group the RAM weigher would have spread them over the three hosts.
        assert {s.host for s in placed} == {"h1"}

        fourth = await _boot(h, "aff-3", group)
        assert fourth.status == "ERROR" and fourth.fault is not None
        # h2 and h3 are empty, and still refused.
        assert fourth.fault["message"] == (
            "No valid host was found. 3 hosts: 1 removed by RamFilter (free RAM 0 MB < "
            "512 MB requested), 2 removed by ServerGroupAffinityFilter (not the host of the "
            "affinity group's members).")
        assert "h2 (node h2): ServerGroupAffinityFilter: affinity group's members are on " \
            "h1" in fourth.fault["details"]
        assert await _allocations(h, fourth.id) == []
        # Another server, not in the group, goes to an empty host at once.
        loner = await h.client.create_server("loner", image=h.image_id,
                                             flavor=h.flavors["m1.tiny"])
        assert (await h.client.wait_for_status(loner, {"ACTIVE", "ERROR"})).status == "ACTIVE"


# --- the soft policies ------------------------------------------------------------------

async def test_soft_anti_affinity_spreads_members_and_never_fails(tmp_path: Path) -> None:
    # The resource weighers spread every build by themselves, which would hide what the
    # group's weigher does: with them off, equal hosts tie and the tie goes to h1 (by
    # name), so only ServerGroupSoftAntiAffinityWeigher can send a member to h2.
    resources_off = {"ram_weight_multiplier": 0.0, "disk_weight_multiplier": 0.0,
                     "cpu_weight_multiplier": 0.0}
    async with running_cloud(tmp_path, fake_hosts(2), scheduler=resources_off) as h:
        plain = [await h.client.wait_for_status(
            await h.client.create_server(f"plain-{i}", image=h.image_id,
                                         flavor=h.flavors["m1.tiny"]), {"ACTIVE"})
            for i in range(2)]
        assert [s.host for s in plain] == ["h1", "h1"]  # the control: no spreading
        for s in plain:
            await h.client.delete_server(s.id)
            await h.client.wait_for_status(s.id, {"DELETED"})

        group = await _group(h, "soft-anti-affinity")
        servers = [await _boot(h, f"soft-anti-{i}", group) for i in range(4)]
        # More members than hosts is fine for a soft policy: two on each.
        assert [s.status for s in servers] == ["ACTIVE"] * 4
        assert Counter(s.host for s in servers) == {"h1": 2, "h2": 2}


async def test_soft_affinity_stacks_members_while_their_host_has_room(tmp_path: Path) -> None:
    # With the default multipliers the three resource weighers (each worth up to 1) would
    # outvote the group's weigher (worth 1) and spread the members; a group weigher worth
    # 10 keeps them together as long as the host has room.
    heavy = {"soft_affinity_weight_multiplier": 10.0}
    # 1366 MB at the RAM allocation ratio 1.5 holds four m1.tiny (2049 MB), not five.
    async with running_cloud(tmp_path, fake_hosts(2, memory_mb=1366), scheduler=heavy) as h:
        group = await _group(h, "soft-affinity")
        servers = [await _boot(h, f"soft-aff-{i}", group) for i in range(4)]
        assert [s.status for s in servers] == ["ACTIVE"] * 4
        assert {s.host for s in servers} == {"h1"}
        # The host is full: a soft policy gives way instead of failing.
        fifth = await _boot(h, "soft-aff-4", group)
        assert (fifth.status, fifth.host) == ("ACTIVE", "h2")


# --- races ------------------------------------------------------------------------------

async def _race_two(h: Harness, group: str, tag: str) -> tuple[list[ServerView], list[str]]:
    """Two creates into ``group`` sent at once; both servers once done, and the request
    id of each."""
    responses = await asyncio.gather(*(_post(h, f"{tag}-{i}", group) for i in range(2)))
    ids = [r.json()["server"]["id"] for r in responses]
    servers = await asyncio.gather(*(
        h.client.wait_for_status(i, {"ACTIVE", "ERROR"}) for i in ids))
    return list(servers), [r.headers["x-openstack-request-id"] for r in responses]


async def test_concurrent_creates_into_anti_affinity_group_one_scheduler(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        group = await _group(h, "anti-affinity")
        first = await _boot(h, "first", group)
        assert (first.status, first.host) == ("ACTIVE", "h1")  # equal hosts: h1 by name

        servers, _ = await _race_two(h, group, "racer")
        [winner] = [s for s in servers if s.status == "ACTIVE"]
        [loser] = [s for s in servers if s.status == "ERROR"]
        assert winner.host == "h2"
        assert loser.fault is not None
        assert loser.fault["message"] == _anti_affinity_refusal(2)
        assert await _allocations(h, loser.id) == []
        # h2 has room for many: one member per host is what kept the second out.
        assert len(await h.driver("h2").list_instances()) == 1


class _ReadTogether:
    """Wraps ``placement.group_members`` so that, while armed, each read is held (after
    reading) until ``count`` reads have been made or ``timeout`` passed: two schedulers
    then decide on the same snapshot of the group, neither seeing the other's claim."""

    def __init__(self, read: Callable[[GroupId], Awaitable[GroupMembers]], *,
                 count: int = 2, timeout: float = 1.0) -> None:
        self.read = read
        self.count = count
        self.timeout = timeout
        self.armed = False
        self.reads = 0
        self.together = asyncio.Event()

    def arm(self) -> None:
        self.armed, self.reads, self.together = True, 0, asyncio.Event()

    async def __call__(self, group_id: GroupId) -> GroupMembers:
        members = await self.read(group_id)
        if self.armed:
            self.reads += 1
            if self.reads >= self.count:
                self.together.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.together.wait(), self.timeout)
        return members


async def test_two_schedulers_racing_on_anti_affinity_are_caught_by_the_compute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # h2 has room for three m1.tiny, so both schedulers can claim it for the two racers.
    async with running_cloud(tmp_path, fake_hosts(2, memory_mb=THREE_TINY)) as h:
        gate = _ReadTogether(h.cloud.db.placement.group_members)
        # Both schedulers share this database object: the embedded one and the second.
        monkeypatch.setattr(h.cloud.db.placement, "group_members", gate)
        stop = asyncio.Event()
        second = asyncio.create_task(
            run_scheduler(h.cloud.settings, h.cloud.db, h.cloud.bus, stop),
            name="scheduler-2")
        try:
            await asyncio.sleep(0.2)  # let it start serving: the bus round-robins from then
            caught_by_compute = 0
            # The first attempts race naturally; the last ones hold the group reads
            # until both schedulers have made theirs, so both claim h2 for certain (the
            # in-process bus hands the two requests to the two schedulers in turn).
            for attempt, gated in enumerate((False, False, True, True)):
                group = await _group(h, "anti-affinity", f"race-{attempt}")
                # The admin forces the first member onto h1 (a forced host skips the
                # policy filters; the group is empty anyway).
                first = await _boot(h, f"first-{attempt}", group,
                                    availability_zone="nova:h1")
                assert (first.status, first.host) == ("ACTIVE", "h1")
                if gated:
                    gate.arm()
                servers, request_ids = await _race_two(h, group, f"racer-{attempt}")
                gate.armed = False
                statuses = sorted(s.status for s in servers)
                # Never two members on one host, however the race went.
                assert statuses == ["ACTIVE", "ERROR"], (attempt, servers)
                [winner] = [s for s in servers if s.status == "ACTIVE"]
                loser = next(s for s in servers if s.status == "ERROR")
                request_id = request_ids[servers.index(loser)]
                assert winner.host == "h2"
                assert len(await h.driver("h2").list_instances()) == 1
                assert await _allocations(h, loser.id) == []
                assert loser.fault is not None
                assert loser.fault["message"].startswith("No valid host was found.")
                assert "ServerGroupAntiAffinityFilter" in loser.fault["message"]
                action = await _create_action(h, loser.id, request_id)
                builds = [e for e in action["events"] if e["event"] == BUILD_EVENT]
                if builds:
                    # Both schedulers chose h2; the compute's check refused the second
                    # build to start there, and the reschedule found no other host.
                    assert [(e["result"], e["host"]) for e in builds] == [("Error", "h2")]
                    assert "server group policy violated: anti-affinity group " \
                        f"{group} already has 1 member(s) on this host" in builds[0]["traceback"]
                    # The user's message counts and names no host; as in Nova it ends
                    # with the last build error (cut at 255 characters).
                    assert loser.fault["message"].startswith(
                        "No valid host was found. 2 hosts: 1 removed by RetryFilter (a build "
                        "of this instance already failed here), 1 removed by "
                        "ServerGroupAntiAffinityFilter (a member of the anti-affinity group "
                        "is there already). Last build error: server group policy violated")
                    assert "h1" not in loser.fault["message"]
                    assert "h2" not in loser.fault["message"]
                    assert f"Last build error: server group policy violated: anti-affinity " \
                        f"group {group} already has 1 member(s) on this host (at most 1)" in \
                        loser.fault["details"]
                    caught_by_compute += 1
                else:
                    # The later decision saw the earlier claim: refused at scheduling.
                    assert loser.fault["message"] == _anti_affinity_refusal(2)
                if gated:
                    assert builds, "both schedulers should have chosen h2"
                for s in (first, *servers):
                    await h.client.delete_server(s.id)
                await asyncio.gather(*(h.client.wait_for_status(s.id, {"DELETED"})
                                       for s in (first, *servers)))
            assert caught_by_compute >= 2
        finally:
            stop.set()
            await second


# --- bad hints, deleted groups ------------------------------------------------------------

async def test_bad_group_hints_are_refused_and_create_nothing(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        unknown = "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77"
        field = "Invalid input for field/attribute os:scheduler_hints.group."
        for hint, message in (("not-a-uuid", f"{field} Value: 'not-a-uuid'. 'not-a-uuid' "
                                             f"is not a 'uuid'"),
                              (5, f"{field} Value: 5. Input should be a valid string"),
                              (unknown, f"Invalid server group: Instance group {unknown} "
                                        f"could not be found.")):
            with pytest.raises(ApiError) as exc:
                await _post(h, "bad", hint)
            assert exc.value.status == 400, exc.value
            assert exc.value.message == message

        # A member of another project cannot put servers in the admin's group: to it
        # the group does not exist. (The embedded API knows the admin token only; a
        # second app over the same database and bus knows a member of "project-a".)
        group = await _group(h, "anti-affinity")
        image = await h.client.create_image("public", b"x" * 4096, disk_format="raw",
                                            visibility="public")
        member_app = create_app(ApiDeps(
            db=h.cloud.db, bus=h.cloud.bus,
            image_store=ImageStore(h.cloud.settings.data_dir / "images"),
            auth=StaticTokenAuth("", tokens={"alice": ("alice", "project-a", ("member",))}),
            settings=h.cloud.settings.api), h.cloud.settings.api)
        async with ApiClient("http://strato", "alice",
                                 transport=httpx.ASGITransport(app=member_app)) as alice:
            with pytest.raises(ApiError) as exc:
                await _post(h, "intruder", group, client=alice, image=image)
            assert exc.value.status == 400
            assert exc.value.message == (f"Invalid server group: Instance group {group} "
                                         f"could not be found.")
            # The body is otherwise fine: without the hint the member may boot.
            resp = await alice.request("POST", "/v2.1/servers", json={"server": {
                "name": "own", "imageRef": image, "flavorRef": h.flavors["m1.tiny"]}})
            own = resp.json()["server"]["id"]
        assert (await h.client.wait_for_status(own, {"ACTIVE", "ERROR"})).status == "ACTIVE"
        assert [s.id for s in await h.client.list_servers(all_tenants=1)] == [own]
        assert await _members(h, group) == []


async def test_deleting_a_group_leaves_its_members_running(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        group = await _group(h, "anti-affinity")
        servers = [await _boot(h, f"kept-{i}", group) for i in range(2)]
        assert [s.status for s in servers] == ["ACTIVE"] * 2
        await h.client.request("DELETE", f"{GROUPS}/{group}")
        with pytest.raises(ApiError) as exc:
            await _members(h, group)
        assert exc.value.status == 404
        await asyncio.sleep(0.3)  # a few compute reports and audits later
        for before in servers:
            after = await h.client.get_server(before.id)
            assert (after.status, after.host) == ("ACTIVE", before.host)
        assert sum([len(await h.driver(x).list_instances()) for x in ("h1", "h2")]) == 2
        # The group is gone for new servers too, and nothing is created for them.
        with pytest.raises(ApiError) as exc:
            await _post(h, "late", group)
        assert exc.value.status == 400
        assert len(await h.client.list_servers()) == 2
        # Ungrouped, the old members no longer constrain anything: a third server may
        # share a host with one of them.
        third = await h.client.wait_for_status(await h.client.create_server(
            "third", image=h.image_id, flavor=h.flavors["m1.tiny"]), {"ACTIVE", "ERROR"})
        assert third.status == "ACTIVE"


# --- the server_group_members quota -----------------------------------------------------

async def test_server_group_members_quota_refuses_the_third_member(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3)) as h:
        admin = await h.cloud.db.identity.user_by_name("admin")
        project = admin.default_project_id
        resp = await h.client.request("PUT", f"/v2.1/os-quota-sets/{project}", json={
            "quota_set": {"server_group_members": 2}})
        assert resp.json()["quota_set"]["server_group_members"] == 2
        group = await _group(h, "anti-affinity")
        members = [await _boot(h, f"member-{i}", group) for i in range(2)]
        assert [s.status for s in members] == ["ACTIVE"] * 2

        with pytest.raises(ApiError) as exc:
            await _post(h, "member-2", group)
        assert (exc.value.status, exc.value.fault) == (403, "forbidden")
        assert "Quota exceeded, too many servers in group" in exc.value.message
        # Nothing was created: no server, no member, nothing scheduled.
        assert {s.id for s in await h.client.list_servers()} == {s.id for s in members}
        assert await _members(h, group) == [s.id for s in members]
        # A batch that would pass the limit is refused whole, too.
        with pytest.raises(ApiError) as exc:
            await _post(h, "batch", group, min_count=1, max_count=2)
        assert exc.value.status == 403
        assert len(await h.client.list_servers()) == 2
        # Outside the group the project may still create servers.
        other = await h.client.create_server("outside", image=h.image_id,
                                             flavor=h.flavors["m1.tiny"])
        assert (await h.client.wait_for_status(other, {"ACTIVE"})).status == "ACTIVE"
