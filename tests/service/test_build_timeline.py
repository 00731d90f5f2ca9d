"""A build's timeline in ``os-instance-actions``: the create action's events, one per step
of the create path (the conductor's scheduling, the compute's build and its steps), each
with a start and a finish, as a dashboard draws them; on the fake driver, embedded.

What everyone sees (``details``, never a host name) and what only admins see (``host``,
``alternates``, ``traceback``) are checked on both sides.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx

from strato.api import StaticTokenAuth, create_app
from strato.compute.build import BUILD_EVENT, BUILD_STEP_EVENTS
from strato.conductor.boot import EVENT as SCHEDULE_EVENT
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until

MEMBER = "member-token"  # a member (not an admin) of the admin's project
# Every decision reads the node rows that changed (a failed build's count included).
FRESH = {"scheduler": {"host_refresh_interval": 0}}

ADMIN_KEYS = {"event", "start_time", "finish_time", "result", "details", "traceback", "host",
              "alternates"}
MEMBER_KEYS = {"event", "start_time", "finish_time", "result", "details", "traceback"}
# Asks for the fields Nova 2.1 has not (details; host and alternates for admins).
EXTRAS = {"X-Strato-Action-Extras": "1"}


@asynccontextmanager
async def _member(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client acting as a member (no admin role) of the project the harness's admin
    creates its servers in, on the same cloud."""
    project = (await h.cloud.db.identity.user_by_name("admin")).default_project_id
    assert project is not None
    deps = cast(Any, h.cloud.app).state.deps
    app = create_app(replace(deps, auth=StaticTokenAuth("", tokens={
        MEMBER: ("member", project, ("member",))})), deps.settings)
    async with httpx.AsyncClient(base_url="http://strato",
                                 headers={"X-Auth-Token": MEMBER, **EXTRAS},
                                 transport=httpx.ASGITransport(app=app)) as client:
        yield client


async def _boot(h: Harness, name: str, *, flavor: str = "m1.tiny") -> tuple[str, str]:
    """Create a server and wait until it is ACTIVE or ERROR: its id and request id."""
    resp = await h.client.request("POST", "/v2.1/servers", json={"server": {
        "name": name, "imageRef": h.image_id, "flavorRef": h.flavors[flavor]}})
    server_id = resp.json()["server"]["id"]
    await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
    return server_id, resp.headers["x-openstack-request-id"]


def _path(server_id: str, request_id: str) -> str:
    return f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}"


async def _admin_events(h: Harness, server_id: str,
                        request_id: str) -> list[dict[str, Any]]:
    """The action's events as the admin sees them, with strato's extras."""
    resp = await h.client.request("GET", _path(server_id, request_id), headers=EXTRAS)
    events: list[dict[str, Any]] = resp.json()["instanceAction"]["events"]
    return events


async def _events(h: Harness, server_id: str, request_id: str, *,
                  done: int) -> list[dict[str, Any]]:
    """The create action's events (as an admin), once ``done`` compute builds have
    finished and recorded their steps (the steps arrive in a cast of their own)."""
    events: list[dict[str, Any]] = []

    async def recorded() -> bool:
        nonlocal events
        events = await _admin_events(h, server_id, request_id)
        builds = [e for e in events if e["event"] == BUILD_EVENT and e["finish_time"]]
        claims = [e for e in events if e["event"] == "compute_claim_resources"]
        return len(builds) == done and len(claims) == done

    await wait_until(recorded, timeout=10)
    return events


def _t(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _steps_of(events: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] in BUILD_STEP_EVENTS and e["host"] == host]


def _inside(step: dict[str, Any], outer: dict[str, Any]) -> bool:
    return (_t(outer["start_time"]) <= _t(step["start_time"]) <= _t(step["finish_time"])
            <= _t(outer["finish_time"]))


async def test_a_build_shows_each_step_with_its_times(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3)) as h:
        server_id, request_id = await _boot(h, "traced")
        host = (await h.client.get_server(server_id)).host
        assert host is not None
        events = await _events(h, server_id, request_id, done=1)
        assert [e["event"] for e in events] == [SCHEDULE_EVENT, BUILD_EVENT,
                                                *BUILD_STEP_EVENTS]
        assert all(set(e) == ADMIN_KEYS for e in events)
        assert all(e["result"] == "Success" and e["traceback"] is None for e in events)
        schedule, build, *steps = events

        # The scheduling step: where it put the server and what it kept for reschedules.
        assert schedule["host"] == host
        assert sorted(schedule["alternates"]) == sorted({"h1", "h2", "h3"} - {host})
        assert schedule["details"] == "placed on a host; 2 alternate hosts kept for reschedules"

        # The compute's steps, in order, one after the other, inside the build on the host.
        assert build["host"] == host and build["details"] is None
        assert all(e["host"] == host and e["alternates"] == [] for e in steps)
        assert all(_inside(step, build) for step in steps)
        claim, networks, image, plug, spawn, boot = steps
        assert _t(claim["finish_time"]) <= _t(networks["start_time"])
        # The ports are allocated while the image is prepared: both start before either
        # of the later steps.
        assert _t(networks["start_time"]) <= _t(image["start_time"])
        assert max(_t(networks["finish_time"]), _t(image["finish_time"])) <= \
            _t(plug["start_time"])
        assert _t(plug["finish_time"]) <= _t(spawn["start_time"])
        assert _t(spawn["finish_time"]) <= _t(boot["start_time"])
        # Scheduling ends before the compute starts (it casts the build at its end).
        assert _t(schedule["finish_time"]) <= _t(build["start_time"])

        # A member of the project sees the same bars and the plain-words details, but no
        # host name anywhere.
        async with _member(h) as member:
            resp = await member.get(_path(server_id, request_id))
        assert resp.status_code == 200, resp.text
        seen = resp.json()["instanceAction"]["events"]
        assert [e["event"] for e in seen] == [e["event"] for e in events]
        assert all(set(e) == MEMBER_KEYS for e in seen)
        assert seen[0]["details"] == schedule["details"]
        assert [(e["start_time"], e["finish_time"], e["result"]) for e in seen] == \
            [(e["start_time"], e["finish_time"], e["result"]) for e in events]
        text = json.dumps(seen)
        assert not any(name in text for name in ("h1", "h2", "h3"))


async def test_a_spawn_failure_shows_on_the_spawn_step_and_no_boot(tmp_path: Path) -> None:
    hosts = fake_hosts(1, fail_names=frozenset({"broken"}), fail_retryable=False)
    async with running_cloud(tmp_path, hosts) as h:
        server_id, request_id = await _boot(h, "broken")
        assert (await h.client.get_server(server_id)).status == "ERROR"
        events = await _events(h, server_id, request_id, done=1)
        assert [(e["event"], e["result"]) for e in events] == [
            (SCHEDULE_EVENT, "Success"), (BUILD_EVENT, "Error"),
            ("compute_claim_resources", "Success"), ("compute_allocate_networks", "Success"),
            ("compute_prepare_image", "Success"), ("compute_plug_vifs", "Success"),
            ("compute_spawn", "Error")]
        spawn = events[-1]
        assert spawn["traceback"] == "injected spawn failure of broken on h1"
        assert spawn["host"] == "h1" and _inside(spawn, events[1])
        assert events[0]["details"] == \
            "placed on a host; no alternate hosts kept for reschedules"
        async with _member(h) as member:
            seen = (await member.get(_path(server_id, request_id))).json()[
                "instanceAction"]["events"]
        assert seen[-1] == {"event": "compute_spawn", "start_time": spawn["start_time"],
                            "finish_time": spawn["finish_time"], "result": "Error",
                            "details": None, "traceback": None}


async def test_a_reschedule_shows_the_steps_on_both_hosts(tmp_path: Path) -> None:
    # bad1 has the most RAM (the scheduler's first choice) and fails every spawn,
    # retryably; h1 and h2 tie, h1 is the first alternate.
    hosts = (fake_hosts(1, prefix="bad", memory_mb=16384, fail_every=1)
             + fake_hosts(2))
    async with running_cloud(tmp_path, hosts, **FRESH) as h:
        server_id, request_id = await _boot(h, "moved")
        server = await h.client.get_server(server_id)
        assert (server.status, server.host) == ("ACTIVE", "h1")
        events = await _events(h, server_id, request_id, done=2)

        first, second = [e for e in events if e["event"] == SCHEDULE_EVENT]
        assert (first["host"], first["alternates"]) == ("bad1", ["h1", "h2"])
        assert first["details"] == "placed on a host; 2 alternate hosts kept for reschedules"
        assert (second["host"], second["alternates"]) == ("h1", ["h2"])
        assert second["details"] == (
            "rescheduled after a build failure on another host (try 2 of 3); took the next "
            "alternate host; 1 alternate host left")

        failed, built = [e for e in events if e["event"] == BUILD_EVENT]
        assert (failed["host"], failed["result"], built["host"], built["result"]) == (
            "bad1", "Error", "h1", "Success")
        on_bad = _steps_of(events, "bad1")
        assert [(e["event"], e["result"]) for e in on_bad] == [
            ("compute_claim_resources", "Success"), ("compute_allocate_networks", "Success"),
            ("compute_prepare_image", "Success"), ("compute_plug_vifs", "Success"),
            ("compute_spawn", "Error")]
        assert on_bad[-1]["traceback"] == "injected spawn failure of moved on bad1"
        on_h1 = _steps_of(events, "h1")
        assert [(e["event"], e["result"]) for e in on_h1] == [
            (name, "Success") for name in BUILD_STEP_EVENTS]
        assert all(_inside(e, failed) for e in on_bad)
        assert all(_inside(e, built) for e in on_h1)
        # The timeline reads in time order: the first try's bars before the second's.
        assert _t(on_bad[-1]["finish_time"]) <= _t(second["start_time"]) <= \
            _t(on_h1[0]["start_time"])

        async with _member(h) as member:
            seen = (await member.get(_path(server_id, request_id))).json()[
                "instanceAction"]["events"]
        assert [e["details"] for e in seen if e["event"] == SCHEDULE_EVENT] == [
            first["details"], second["details"]]
        text = json.dumps(seen)
        assert not any(name in text for name in ("bad1", "h1", "h2"))


async def test_no_valid_host_says_why_filter_by_filter(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2, memory_mb=1024)) as h:
        server_id, request_id = await _boot(h, "too-big", flavor="m1.small")
        why = ("No valid host was found. 2 hosts: 2 removed by RamFilter "
               "(free RAM 1536 MB < 2048 MB requested).")
        [event] = await _admin_events(h, server_id, request_id)
        assert (event["event"], event["result"], event["details"]) == (
            SCHEDULE_EVENT, "Error", why)
        assert (event["host"], event["alternates"]) == (None, [])
        async with _member(h) as member:
            [seen] = (await member.get(_path(server_id, request_id))).json()[
                "instanceAction"]["events"]
        assert (seen["result"], seen["details"]) == ("Error", why)
        assert set(seen) == MEMBER_KEYS


async def test_retries_exhausted_say_so_without_naming_hosts(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3, fail_every=1)) as h:
        server_id, request_id = await _boot(h, "doomed")
        events = await _events(h, server_id, request_id, done=3)
        schedules = [e for e in events if e["event"] == SCHEDULE_EVENT]
        assert [e["result"] for e in schedules] == ["Success"] * 3 + ["Error"]
        assert schedules[-1]["details"] == (
            "not rescheduled: the build failed on 3 hosts, the maximum number of tries (3)")
        # Three tries, each ending in its spawn.
        assert [e["host"] for e in events if e["event"] == "compute_spawn"] == \
            [e["host"] for e in schedules[:3]]
        assert sorted(e["host"] for e in schedules[:3]) == ["h1", "h2", "h3"]
        assert {e["result"] for e in events if e["event"] == "compute_spawn"} == {"Error"}
        assert not [e for e in events if e["event"] == "compute_boot"]


async def test_the_boot_step_lasts_until_the_guest_writes_on_its_console(
        tmp_path: Path) -> None:
    # The fake guest stays silent for 0.8 s after its spawn, as a real one boots.
    async with running_cloud(tmp_path, fake_hosts(1, console_delay=0.8)) as h:
        server_id, request_id = await _boot(h, "slow-boot")
        assert (await h.client.get_server(server_id)).status == "ACTIVE"
        events = await _events(h, server_id, request_id, done=1)
        # ACTIVE as soon as the guest runs (as in Nova); the boot is not over yet.
        assert "compute_boot" not in [e["event"] for e in events]
        assert len(h.cloud.computes["h1"].watchers.running) == 1

        async def booted() -> bool:
            nonlocal events
            events = await _admin_events(h, server_id, request_id)
            return bool(events[-1]["event"] == "compute_boot")

        await wait_until(booted, timeout=10)
        boot, spawn = events[-1], next(e for e in events if e["event"] == "compute_spawn")
        build = next(e for e in events if e["event"] == BUILD_EVENT)
        assert boot["result"] == "Success" and boot["host"] == "h1"
        assert _t(boot["start_time"]) >= _t(spawn["finish_time"])
        assert (_t(boot["finish_time"]) - _t(boot["start_time"])).total_seconds() >= 0.7
        assert _t(boot["finish_time"]) > _t(build["finish_time"])
        assert h.cloud.computes["h1"].watchers.running == set()


async def test_a_guest_deleted_before_its_boot_leaves_no_boot_step(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, console_delay=60)) as h:
        server_id, request_id = await _boot(h, "short-lived")
        await _events(h, server_id, request_id, done=1)
        watchers = h.cloud.computes["h1"].watchers.running
        assert len(watchers) == 1
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})

        async def stopped() -> bool:
            return not watchers

        await wait_until(stopped, timeout=10)
        resp = await h.client.request("GET", _path(server_id, request_id),
                                      headers={"X-OpenStack-Nova-API-Version": "2.1"})
        if resp.status_code == 200:
            assert "compute_boot" not in [e["event"] for e in resp.json()[
                "instanceAction"]["events"]]
        else:
            assert resp.status_code == 404


async def test_a_compute_stopping_cancels_its_boot_watchers(tmp_path: Path) -> None:
    hosts = fake_hosts(1, console_delay=60)
    async with running_cloud(tmp_path, hosts) as h:
        server_id, request_id = await _boot(h, "never-boots")
        await _events(h, server_id, request_id, done=1)
        watchers = set(h.cloud.computes["h1"].watchers.running)
        assert len(watchers) == 1
    # The cloud stopped at once (not after the 60 s) and took its watcher with it.
    assert all(task.cancelled() for task in watchers)
