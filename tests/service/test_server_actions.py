"""Server actions end to end on the fake driver: API -> compute over the bus -> driver.

Each action's happy path and the states it leaves, Nova's 409s for states that forbid
it, the lock, rebuild with a new image, racing actions, the instance-action records and
bad bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import httpx

from strato.api import StaticTokenAuth, create_app
from strato.domain.errors import AbortBuild
from strato.domain.ids import InstanceId
from strato.domain.instances import Instance, PowerState, TaskState, VmState
from strato.virt.fake import FakeDriver
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud

ALICE = "alice-token"  # member of project-a
ALICE2 = "alice2-token"  # another member of project-a
BOB = "bob-token"  # member of project-b


@dataclass
class Cloud:
    """The running cloud, and clients acting as the admin and as project members."""

    h: Harness
    http: dict[str, httpx.AsyncClient]
    image: str  # a public image every project may boot

    async def act(self, server_id: str, body: Any, *, as_: str = "admin") -> httpx.Response:
        return await self.http[as_].post(f"/v2.1/servers/{server_id}/action", json=body)

    async def create(self, name: str = "vm", *, as_: str = "admin",
                     flavor: str = "m1.tiny") -> str:
        resp = await self.http[as_].post("/v2.1/servers", json={"server": {
            "name": name, "imageRef": self.image, "flavorRef": self.h.flavors[flavor]}})
        assert resp.status_code == 202, resp.text
        server_id = str(resp.json()["server"]["id"])
        await self.h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        return server_id

    async def row(self, server_id: str) -> Instance:
        return await self.h.cloud.db.instances.get(InstanceId(server_id))

    async def settled(self, server_id: str, timeout: float = 10.0) -> Instance:
        """The instance once no task runs on it."""
        async with asyncio.timeout(timeout):
            while (row := await self.row(server_id)).task_state is not None:
                await asyncio.sleep(0.01)
        return row

    def driver(self, row: Instance) -> FakeDriver:
        return self.h.driver(row.host or "")

    async def actions(self, server_id: str) -> list[dict[str, Any]]:
        resp = await self.h.client.request("GET",
                                           f"/v2.1/servers/{server_id}/os-instance-actions")
        actions: list[dict[str, Any]] = resp.json()["instanceActions"]
        return actions

    async def events(self, server_id: str, request_id: str) -> list[dict[str, Any]]:
        resp = await self.h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
            headers={"X-Strato-Action-Extras": "1"})  # with each event's host
        events: list[dict[str, Any]] = resp.json()["instanceAction"]["events"]
        return events


@asynccontextmanager
async def cloud(tmp_path: Path, **fake: Any) -> AsyncIterator[Cloud]:
    async with running_cloud(tmp_path, fake_hosts(2, **fake)) as h:
        # A second app over the same database and bus, with member tokens.
        deps = cast(Any, h.cloud.app).state.deps
        members = create_app(replace(deps, auth=StaticTokenAuth("", tokens={
            ALICE: ("alice", "project-a", ("member",)),
            ALICE2: ("alice2", "project-a", ("member",)),
            BOB: ("bob", "project-b", ("member",))})), deps.settings)
        clients = {token: httpx.AsyncClient(
            base_url="http://strato", headers={"X-Auth-Token": token},
            transport=httpx.ASGITransport(app=members)) for token in (ALICE, ALICE2, BOB)}
        image = await h.client.create_image("public", b"p" * 4096, disk_format="raw",
                                            visibility="public")
        try:
            yield Cloud(h=h, http={"admin": h.client._http, **clients}, image=image)
        finally:
            for client in clients.values():
                await client.aclose()


def conflict(resp: httpx.Response) -> str:
    assert resp.status_code == 409, resp.text
    message: str = resp.json()["conflictingRequest"]["message"]
    return message


def bad_request(resp: httpx.Response) -> str:
    assert resp.status_code == 400, resp.text
    message: str = resp.json()["badRequest"]["message"]
    return message


async def accepted(c: Cloud, server_id: str, body: Any, *, as_: str = "admin") -> Instance:
    """Send the action, check Nova's 202 with an empty body, wait until it is done."""
    resp = await c.act(server_id, body, as_=as_)
    assert resp.status_code == 202, resp.text
    assert resp.content == b""
    return await c.settled(server_id)


# --- every action's happy path ----------------------------------------------------------

async def test_each_action_moves_the_server_through_novas_states(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        row = await c.row(sid)
        driver = c.driver(row)
        launched_at = row.launched_at
        steps: list[tuple[dict[str, Any], VmState, PowerState, str, str]] = [
            ({"reboot": {"type": "SOFT"}}, VmState.ACTIVE, PowerState.RUNNING, "ACTIVE",
             "soft reboot"),
            ({"reboot": {"type": "hard"}}, VmState.ACTIVE, PowerState.RUNNING, "ACTIVE",
             "hard reboot"),
            ({"os-stop": None}, VmState.STOPPED, PowerState.SHUTDOWN, "SHUTOFF", "power off"),
            ({"os-start": None}, VmState.ACTIVE, PowerState.RUNNING, "ACTIVE", "power on"),
            ({"pause": None}, VmState.PAUSED, PowerState.PAUSED, "PAUSED", "paused"),
            ({"unpause": {}}, VmState.ACTIVE, PowerState.RUNNING, "ACTIVE", "unpaused"),
            ({"suspend": None}, VmState.SUSPENDED, PowerState.SUSPENDED, "SUSPENDED",
             "suspended"),
            ({"resume": None}, VmState.ACTIVE, PowerState.RUNNING, "ACTIVE", "resumed"),
        ]
        for body, vm_state, power, status, console in steps:
            row = await accepted(c, sid, body)
            assert (row.vm_state, row.power_state, row.task_state) == (vm_state, power, None)
            assert (await c.h.client.get_server(sid)).status == status
            assert (await driver.console_output(InstanceId(sid))).splitlines()[-1] == \
                f"fake-guest: {console}"
            assert row.host is not None and row.fault is None
        assert row.launched_at == launched_at  # none of these relaunches the guest

        # One action per request, newest first, each with the compute's event.
        actions = await c.actions(sid)
        assert [a["action"] for a in actions] == [
            "resume", "suspend", "unpause", "pause", "start", "stop", "reboot", "reboot",
            "create"]
        for action in actions[:-1]:
            [event] = await c.events(sid, action["request_id"])
            assert event["event"] == f"compute_{action['action']}_instance"
            assert event["result"] == "Success" and event["host"] == row.host
            assert (action["user_id"], action["project_id"]) == (row.user_id, row.project_id)


async def test_status_shows_reboot_and_rebuild_while_they_run(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        row = await c.row(sid)
        gate = asyncio.Event()
        driver = c.driver(row)
        real_reboot = driver.reboot

        async def held_reboot(instance_id: InstanceId, *, hard: bool = False) -> None:
            await gate.wait()
            await real_reboot(instance_id, hard=hard)
        driver.reboot = held_reboot  # type: ignore[method-assign]
        for kind, status in (("SOFT", "REBOOT"), ("HARD", "HARD_REBOOT")):
            gate.clear()
            assert (await c.act(sid, {"reboot": {"type": kind}})).status_code == 202
            server = await c.h.client.get_server(sid)
            assert (server.status, server.task_state) == (
                status, "rebooting" if kind == "SOFT" else "rebooting_hard")
            gate.set()
            assert (await c.settled(sid)).vm_state == VmState.ACTIVE
        assert (await c.h.client.get_server(sid)).status == "ACTIVE"


# --- states that forbid an action -------------------------------------------------------

async def test_forbidden_states_are_409_with_novas_message(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        body: dict[str, Any]
        for body, name in (({"os-start": None}, "start"), ({"unpause": None}, "unpause"),
                           ({"resume": None}, "resume")):
            assert conflict(await c.act(sid, body)) == (
                f"Cannot '{name}' instance {sid} while it is in vm_state active")

        await accepted(c, sid, {"os-stop": None})
        for body, name in (({"reboot": {"type": "SOFT"}}, "reboot"),
                           ({"os-stop": None}, "stop"), ({"pause": None}, "pause"),
                           ({"suspend": None}, "suspend"), ({"unpause": None}, "unpause")):
            assert conflict(await c.act(sid, body)) == (
                f"Cannot '{name}' instance {sid} while it is in vm_state stopped")
        # A hard reboot starts a stopped server (Nova's ALLOW_HARD_REBOOT) ...
        row = await accepted(c, sid, {"reboot": {"type": "HARD"}})
        assert (row.vm_state, row.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
        # ... and a paused or a suspended one.
        for into, state in (("pause", "paused"), ("suspend", "suspended")):
            await accepted(c, sid, {into: None})
            assert conflict(await c.act(sid, {"reboot": {"type": "SOFT"}})) == (
                f"Cannot 'reboot' instance {sid} while it is in vm_state {state}")
            assert conflict(await c.act(sid, {"os-stop": None})).endswith(f"vm_state {state}")
            row = await accepted(c, sid, {"reboot": {"type": "HARD"}})
            assert (row.vm_state, row.power_state) == (VmState.ACTIVE, PowerState.RUNNING)

        # A task in progress: every action is refused, naming the task.
        await c.h.cloud.db.instances.update(InstanceId(sid),
                                            {"task_state": TaskState.PAUSING},
                                            expected_task_state=(None,))
        assert conflict(await c.act(sid, {"reboot": {"type": "HARD"}})) == (
            f"Cannot 'reboot' instance {sid} while it is in task_state pausing")
        assert conflict(await c.act(sid, {"rebuild": {"imageRef": c.image}})) == (
            f"Cannot 'rebuild' instance {sid} while it is in task_state pausing")
        assert not [a for a in await c.actions(sid) if a["action"] == "rebuild"]


async def test_an_error_server_may_be_hard_rebooted_or_stopped(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        await c.h.cloud.db.instances.update(InstanceId(sid), {"vm_state": VmState.ERROR},
                                            expected_task_state=(None,))
        assert conflict(await c.act(sid, {"reboot": {"type": "SOFT"}})) == (
            f"Cannot 'reboot' instance {sid} while it is in vm_state error")
        assert conflict(await c.act(sid, {"pause": None})).endswith("vm_state error")
        row = await accepted(c, sid, {"reboot": {"type": "HARD"}})
        assert row.vm_state == VmState.ACTIVE
        await c.h.cloud.db.instances.update(InstanceId(sid), {"vm_state": VmState.ERROR},
                                            expected_task_state=(None,))
        row = await accepted(c, sid, {"os-stop": None})
        assert (row.vm_state, row.power_state) == (VmState.STOPPED, PowerState.SHUTDOWN)


async def test_an_error_server_without_a_host_is_not_ready(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create(flavor="m1.xlarge")  # fits no fake host
        assert (await c.row(sid)).vm_state == VmState.ERROR
        for body in ({"reboot": {"type": "HARD"}}, {"os-stop": None},
                     {"rebuild": {"imageRef": c.image}}):
            assert conflict(await c.act(sid, body)) == f"Instance {sid} is not ready"
        assert (await c.row(sid)).task_state is None


async def test_another_projects_server_is_404_and_unknown_is_404(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create(as_=ALICE)
        for body in ({"reboot": {"type": "SOFT"}}, {"os-stop": None}, {"pause": None},
                     {"lock": None}, {"unlock": None}, {"rebuild": {"imageRef": c.image}}):
            resp = await c.act(sid, body, as_=BOB)
            assert resp.status_code == 404, (body, resp.text)
            assert resp.json()["itemNotFound"]["message"] == \
                f"Instance {sid} could not be found."
            assert (await c.act("no-such-server", body)).status_code == 404
        assert [a["action"] for a in await c.actions(sid)] == ["create"]
        # The owner's project may.
        row = await accepted(c, sid, {"pause": None}, as_=ALICE2)
        assert row.vm_state == VmState.PAUSED
        [pause, _] = await c.actions(sid)
        assert (pause["action"], pause["user_id"], pause["project_id"]) == (
            "pause", "alice2", "project-a")


# --- lock -------------------------------------------------------------------------------

async def test_a_locked_server_refuses_members_but_not_admins(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create(as_=ALICE)
        await accepted(c, sid, {"lock": {"locked_reason": "maintenance"}}, as_=ALICE)
        row = await c.row(sid)
        assert (row.locked, row.locked_by, row.locked_reason) == (True, "owner",
                                                                  "maintenance")
        # Not shown before microversion 2.9 (strato speaks 2.1).
        resp = await c.http[ALICE].get(f"/v2.1/servers/{sid}")
        assert "locked" not in resp.json()["server"]

        for body in ({"reboot": {"type": "HARD"}}, {"os-stop": None}, {"pause": None},
                     {"suspend": None}, {"rebuild": {"imageRef": c.image}}):
            assert conflict(await c.act(sid, body, as_=ALICE2)) == f"Instance {sid} is locked"
        assert conflict(await c.http[ALICE].delete(f"/v2.1/servers/{sid}")) == (
            f"Instance {sid} is locked")
        # The console is not an action on the server: still allowed.
        assert (await c.act(sid, {"os-getConsoleOutput": {}}, as_=ALICE)).status_code == 200
        # Locking again as the owner changes nothing (Nova records nothing either).
        await accepted(c, sid, {"lock": None}, as_=ALICE2)
        assert [a["action"] for a in await c.actions(sid)] == ["lock", "create"]

        # An admin is not held by the lock.
        row = await accepted(c, sid, {"pause": None})
        assert row.vm_state == VmState.PAUSED and row.locked

        # The owner's project unlocks; then its members may act again.
        await accepted(c, sid, {"unlock": None}, as_=ALICE2)
        row = await c.row(sid)
        assert (row.locked, row.locked_by, row.locked_reason) == (False, None, None)
        assert (await accepted(c, sid, {"unpause": None}, as_=ALICE)).vm_state == \
            VmState.ACTIVE

        # An admin's lock on the project's server: only an admin lifts it.
        await accepted(c, sid, {"lock": None})
        assert (await c.row(sid)).locked_by == "admin"
        resp = await c.act(sid, {"unlock": None}, as_=ALICE)
        assert resp.status_code == 403, resp.text
        assert "unlock_override" in resp.json()["forbidden"]["message"]
        await accepted(c, sid, {"unlock": None})
        assert not (await c.row(sid)).locked

        actions = await c.actions(sid)
        assert [a["action"] for a in actions] == [
            "unlock", "lock", "unpause", "unlock", "pause", "lock", "create"]
        [event] = await c.events(sid, actions[0]["request_id"])
        assert (event["event"], event["result"]) == ("api_unlock", "Success")

        # Locked by the owner, deleted by an admin.
        await accepted(c, sid, {"lock": None}, as_=ALICE)
        assert (await c.h.client._http.delete(f"/v2.1/servers/{sid}")).status_code == 204
        await c.h.client.wait_for_status(sid, {"DELETED"})


# --- rebuild ----------------------------------------------------------------------------

async def test_rebuild_spawns_the_new_image_on_the_same_host(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create("before")
        row = await c.row(sid)
        driver = c.driver(row)
        spawned = driver.statistics().spawned
        allocations = await c.h.cloud.db.nodes.allocations(InstanceId(sid))
        await accepted(c, sid, {"os-stop": None})
        await accepted(c, sid, {"os-start": None})
        new_image = await c.h.client.create_image("new", b"n" * 8192, disk_format="raw",
                                                  visibility="public")

        resp = await c.act(sid, {"rebuild": {
            "imageRef": f"http://strato/images/{new_image}", "name": "after",
            "metadata": {"role": "rebuilt"}, "adminPass": "s3cret"}})
        assert resp.status_code == 202, resp.text
        server = resp.json()["server"]
        assert (server["id"], server["status"], server["name"], server["adminPass"]) == (
            sid, "REBUILD", "after", "s3cret")
        assert server["image"]["id"] == new_image
        assert server["metadata"] == {"role": "rebuilt"}
        # Nova 2.1's rebuild answer is the server view without its extensions.
        assert "OS-EXT-STS:task_state" not in server

        after = await c.settled(sid)
        assert (after.vm_state, after.power_state, after.image_ref) == (
            VmState.ACTIVE, PowerState.RUNNING, new_image)
        assert (after.host, after.node) == (row.host, row.node)
        assert after.launched_at is not None and row.launched_at is not None
        assert after.launched_at > row.launched_at
        assert driver.statistics().spawned == spawned + 1
        # A fresh guest: its console starts over, with the new name.
        assert await driver.console_output(InstanceId(sid)) == \
            f"fake-guest: uuid={sid} booted on {row.node}\n"
        assert await c.h.cloud.db.nodes.allocations(InstanceId(sid)) == allocations
        [rebuild, *_] = await c.actions(sid)
        assert rebuild["action"] == "rebuild"
        [event] = await c.events(sid, rebuild["request_id"])
        assert (event["event"], event["result"]) == ("compute_rebuild_instance", "Success")

        # Without a password, one is generated; name and metadata stay.
        resp = await c.act(sid, {"rebuild": {"imageRef": c.image}})
        assert len(resp.json()["server"]["adminPass"]) == 12
        after = await c.settled(sid)
        assert (after.display_name, after.metadata, after.image_ref) == (
            "after", {"role": "rebuilt"}, c.image)


async def test_rebuild_of_a_stopped_server_leaves_it_stopped(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        await accepted(c, sid, {"os-stop": None})
        resp = await c.act(sid, {"rebuild": {"imageRef": c.image}})
        assert resp.status_code == 202
        assert resp.json()["server"]["status"] == "REBUILD"
        row = await c.settled(sid)
        assert (row.vm_state, row.power_state) == (VmState.STOPPED, PowerState.SHUTDOWN)


async def test_rebuild_checks_the_image_like_create(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        big = await c.h.client.create_image("big", b"b" * 4096, disk_format="raw",
                                            visibility="public", min_ram=4096)
        assert bad_request(await c.act(sid, {"rebuild": {"imageRef": big}})) == (
            "Flavor's memory is too small for requested image.")
        await c.h.client.request("POST", f"/image/v2/images/{big}/actions/deactivate")
        assert bad_request(await c.act(sid, {"rebuild": {"imageRef": big}})) == (
            f"Image {big} is not active.")
        assert bad_request(await c.act(sid, {"rebuild": {
            "imageRef": "1b9e6a47-3ee3-4d5e-8a5b-5d1f0f7f6c00"}})) == (
            "Can not find requested image")
        assert bad_request(await c.act(sid, {"rebuild": {"imageRef": "nope"}})) == (
            "Invalid imageRef provided.")
        # Another project's private image is not there for a member.
        private = await c.h.client.create_image("private", b"q" * 4096, disk_format="raw")
        mine = await c.create(as_=ALICE)
        assert bad_request(await c.act(mine, {"rebuild": {"imageRef": private}},
                                       as_=ALICE)) == "Can not find requested image"
        for server in (sid, mine):
            row = await c.row(server)
            assert (row.task_state, row.image_ref) == (None, c.image)
            assert [a["action"] for a in await c.actions(server)] == ["create"]


async def test_a_failed_rebuild_is_error_with_a_fault(tmp_path: Path) -> None:
    async with cloud(tmp_path, fail_names=frozenset({"doomed"}),
                     fail_retryable=False) as c:
        sid = await c.create()
        resp = await c.act(sid, {"rebuild": {"imageRef": c.image, "name": "doomed"}})
        assert resp.status_code == 202
        row = await c.settled(sid)
        assert (row.vm_state, row.power_state) == (VmState.ERROR, PowerState.NOSTATE)
        assert row.fault is not None and "injected spawn failure of doomed" in \
            row.fault.message
        server = (await c.h.client.request("GET", f"/v2.1/servers/{sid}")).json()["server"]
        assert server["status"] == "ERROR" and "doomed" in server["fault"]["message"]
        [rebuild, _] = await c.actions(sid)
        [event] = await c.events(sid, rebuild["request_id"])
        assert event["result"] == "Error" and "injected" in event["traceback"]
        # ERROR allows another rebuild, which brings it back.
        row = await accepted_rebuild(c, sid, {"imageRef": c.image, "name": "fine"})
        assert (row.vm_state, row.power_state) == (VmState.ACTIVE, PowerState.RUNNING)


async def accepted_rebuild(c: Cloud, sid: str, args: dict[str, Any]) -> Instance:
    resp = await c.act(sid, {"rebuild": args})
    assert resp.status_code == 202, resp.text
    return await c.settled(sid)


# --- failures and races -----------------------------------------------------------------

async def test_a_driver_failure_keeps_the_vm_state_and_records_the_fault(
        tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        driver = c.driver(await c.row(sid))

        async def broken(instance_id: InstanceId) -> None:
            raise AbortBuild("the hypervisor said no")
        driver.pause = broken  # type: ignore[method-assign]
        row = await accepted(c, sid, {"pause": None})
        assert (row.vm_state, row.power_state) == (VmState.ACTIVE, PowerState.RUNNING)
        assert row.fault is not None and row.fault.message == "the hypervisor said no"
        [pause, _] = await c.actions(sid)
        [event] = await c.events(sid, pause["request_id"])
        assert (event["result"], event["traceback"]) == ("Error", "the hypervisor said no")
        # The task state was given back: the next action may run.
        assert (await accepted(c, sid, {"suspend": None})).vm_state == VmState.SUSPENDED


def hold(driver: FakeDriver, method: str) -> asyncio.Event:
    """Make ``driver.<method>`` wait for the returned event before it runs."""
    gate = asyncio.Event()
    real: Callable[..., Awaitable[None]] = getattr(driver, method)

    async def held(*args: Any, **kwargs: Any) -> None:
        await gate.wait()
        await real(*args, **kwargs)
    setattr(driver, method, held)
    return gate


async def test_racing_actions_one_wins_the_others_are_409(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        gate = hold(c.driver(await c.row(sid)), "pause")
        bodies: list[dict[str, Any]] = [
            {"pause": None}, {"pause": None}, {"suspend": None}, {"os-stop": None},
            {"reboot": {"type": "SOFT"}}, {"reboot": {"type": "HARD"}},
            {"rebuild": {"imageRef": c.image}}, {"pause": None}]
        answers = await asyncio.gather(*(c.act(sid, body) for body in bodies))
        assert sorted(r.status_code for r in answers) == [202] + [409] * 7
        winner = next(b for b, r in zip(bodies, answers, strict=True) if r.status_code == 202)
        assert winner == {"pause": None}
        for resp in answers:
            if resp.status_code == 409:
                assert "while" in conflict(resp), resp.text
        assert (await c.row(sid)).task_state == TaskState.PAUSING
        gate.set()
        row = await c.settled(sid)
        assert row.vm_state == VmState.PAUSED
        assert [a["action"] for a in await c.actions(sid)] == ["pause", "create"]


async def test_a_delete_during_an_action_wins(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        driver = c.driver(await c.row(sid))
        gate = hold(driver, "suspend")
        assert (await c.act(sid, {"suspend": None})).status_code == 202
        await asyncio.sleep(0.05)  # the compute is inside the driver call now
        assert (await c.h.client._http.delete(f"/v2.1/servers/{sid}")).status_code == 204
        gate.set()
        await c.h.client.wait_for_status(sid, {"DELETED"})
        assert sid not in await driver.list_instances()
        [_, suspend, _] = await c.actions(sid)
        assert suspend["action"] == "suspend"

        async def suspend_event() -> dict[str, Any]:
            [event] = await c.events(sid, suspend["request_id"])
            return event
        async with asyncio.timeout(5):
            while (event := await suspend_event())["result"] is None:
                await asyncio.sleep(0.01)
        assert event["result"] == "Error" and "changed meanwhile" in event["traceback"]


# --- bodies -----------------------------------------------------------------------------

BAD_BODIES: list[tuple[Any, str]] = [
    ({"reboot": {}}, "'type' is a required property"),
    ({"reboot": None}, "reboot"),
    ({"reboot": {"type": "WARM"}}, "reboot.type"),
    ({"reboot": {"type": "SOFT", "force": True}},
     "Additional properties are not allowed ('force' was unexpected)"),
    ({"os-stop": {"force": True}}, "os-stop"),
    ({"pause": []}, "pause"),
    ({"lock": {"locked_reason": ""}}, "lock.locked_reason"),
    ({"lock": {"locked_reason": 5}}, "lock.locked_reason"),
    ({"lock": {"reason": "x"}}, "'reason' was unexpected"),
    ({"rebuild": {}}, "'imageRef' is a required property"),
    ({"rebuild": None}, "rebuild"),
    ({"rebuild": {"imageRef": 5}}, "rebuild.imageRef"),
    ({"rebuild": {"imageRef": "x", "user_data": "eA=="}}, "'user_data' was unexpected"),
    ({"rebuild": {"imageRef": "x", "name": " padded "}}, "rebuild.name"),
    ({"rebuild": {"imageRef": "x", "metadata": {"k": 1}}}, "rebuild.metadata.k"),
    ({"no-such-action": None}, "There is no such action: no-such-action"),
    ({"pause": None, "unpause": None}, "exactly one action"),
]


async def test_bad_bodies_are_400_and_change_nothing(tmp_path: Path) -> None:
    async with cloud(tmp_path) as c:
        sid = await c.create()
        for body, message in BAD_BODIES:
            assert message in bad_request(await c.act(sid, body)), body
        row = await c.row(sid)
        assert (row.vm_state, row.task_state, row.locked) == (VmState.ACTIVE, None, False)
        assert [a["action"] for a in await c.actions(sid)] == ["create"]
