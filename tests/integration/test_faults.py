"""The cloud survives infrastructure faults, with real processes: api, conductor,
scheduler and computes as OS processes (``strato.testing.cluster``) over a private
RabbitMQ node and a private PostgreSQL cluster of this module's own
(``strato.testing.private``), so restarting them disturbs no other test.

Four faults: RabbitMQ restarted during 50 builds; PostgreSQL restarted during 50 builds
(the API answers 503, never another 5xx, while it is down); a compute SIGKILLed while
its builds spawn, then started again; the API SIGKILLed during an image upload, then
started again.

Each ends the same way (:func:`_assert_clean`): every instance ACTIVE, or ERROR with a
fault, within its build deadline; the books balance (allocations = instances,
``tests.invariants``); every compute port belongs to a live instance; every fake guest
(kept in a state file per host, as a hypervisor keeps its domains across a compute's
death) belongs to an ACTIVE instance on its host. Then everything is deleted and
nothing may be left: no allocation, no port, no guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.client import ApiClient
from strato.client.auth import password_token
from strato.db.ports import InstanceQuery
from strato.db.sql import SqlDatabase
from strato.testing.cluster import Cluster, run_cluster
from strato.testing.private import (
    PrivatePostgres,
    PrivateRabbit,
    private_postgres,
    private_rabbitmq,
)
from tests.invariants import assert_books_balance

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

ADMIN_PASSWORD = "strato-admin"  # identity.admin_password's default
BUILD_TIMEOUT = 30.0             # the conductor's build deadline in these tests
BUILDS = 50


@pytest.fixture
def rabbit() -> Iterator[PrivateRabbit]:
    with private_rabbitmq() as node:
        yield node


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@dataclass
class Cloud:
    cluster: Cluster
    client: ApiClient
    token: str
    state_dir: Path
    image: str
    flavor: str
    network: str


@contextlib.asynccontextmanager
async def _cloud(tmp_path: Path, pg: PrivatePostgres, rabbit: PrivateRabbit, *,
                 hosts: Sequence[str], spawn_delay: float,
                 extra_env: dict[str, str] | None = None) -> AsyncIterator[Cloud]:
    state_dir = tmp_path / "guests"
    state_dir.mkdir()
    env = {"STRATO_COMPUTE__FAKE__SPAWN_DELAY": str(spawn_delay),
           "STRATO_COMPUTE__FAKE__STATE_DIR": str(state_dir),
           "STRATO_SCHEDULER__BUILD_TIMEOUT": str(BUILD_TIMEOUT),
           "STRATO_RPC__CALL_TIMEOUT": "10", **(extra_env or {})}
    with run_cluster(data_dir=tmp_path / "cloud", db_url=pg.url, transport_url=rabbit.url,
                     compute_hosts=hosts, extra_env=env) as cluster:
        token = await password_token(cluster.api_url, user="admin", password=ADMIN_PASSWORD,
                                     project="admin")
        async with ApiClient(cluster.api_url, token, timeout=60) as client:
            await _wait_for_hosts(client, len(hosts))
            await _unlimited(client)
            image = await client.create_image("img", b"\0" * 4096, disk_format="raw")
            flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
            network = await _network(client)
            yield Cloud(cluster=cluster, client=client, token=token, state_dir=state_dir,
                        image=image, flavor=flavor, network=network)


async def _wait_for_hosts(client: ApiClient, count: int) -> None:
    async with asyncio.timeout(60):
        while len((await client.request("GET", "/v2.1/os-hypervisors")).json()
                  ["hypervisors"]) < count:
            await asyncio.sleep(0.2)


async def _unlimited(client: ApiClient) -> None:
    """No quota in the way of 50 builds."""
    projects = (await client.request("GET", "/identity/v3/projects",
                                     params={"name": "admin"})).json()["projects"]
    await client.request("PUT", f"/v2.1/os-quota-sets/{projects[0]['id']}", json={
        "quota_set": {"instances": -1, "cores": -1, "ram": -1}})


async def _network(client: ApiClient) -> str:
    net = (await client.request("POST", "/networking/v2.0/networks",
                                json={"network": {"name": "fault-net"}})).json()["network"]
    await client.request("POST", "/networking/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.250.0.0/24", "ip_version": 4}})
    return str(net["id"])


async def _boot(cloud: Cloud, name: str, count: int) -> None:
    await cloud.client.request("POST", "/v2.1/servers", json={"server": {
        "name": name, "imageRef": cloud.image, "flavorRef": cloud.flavor,
        "networks": [{"uuid": cloud.network}], "min_count": count, "max_count": count}})


async def _statuses(client: ApiClient) -> Counter[str]:
    return Counter(s.status for s in await client.list_servers())


async def _wait_until(client: ApiClient, predicate: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate(await _statuses(client)):
            await asyncio.sleep(0.2)


def _guests(state_dir: Path) -> dict[str, set[str]]:
    """Host -> the fake guests (domains with their disks) it holds."""
    return {path.stem: set(json.loads(path.read_text())["guests"])
            for path in state_dir.glob("*.json")}


async def _settle(cloud: Cloud) -> None:
    """Every server ACTIVE, or ERROR with a fault message, once the build deadline (and
    the deadline check's interval) has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUILD_TIMEOUT * 1.5 + 30
    while True:
        servers = await cloud.client.list_servers()
        if all(s.status in {"ACTIVE", "ERROR"} and s.task_state is None for s in servers):
            break
        if loop.time() > deadline:
            states = Counter((s.status, s.task_state, s.host) for s in servers)
            raise AssertionError(f"builds still going past their deadline: {states}; "
                                 f"logs in {cloud.cluster.data_dir}")
        await asyncio.sleep(0.5)
    for server in servers:
        if server.status == "ERROR":
            assert server.fault is not None and server.fault.get("message"), server


async def _assert_clean(cloud: Cloud, pg: PrivatePostgres) -> Counter[str]:
    """See the module docstring; returns the statuses the servers ended in."""
    await _settle(cloud)
    db = await SqlDatabase.open(pg.url)
    try:
        await _assert_consistent(cloud, db)
        servers = await cloud.client.list_servers()
        ended = Counter(s.status for s in servers)
        await asyncio.gather(*(cloud.client.delete_server(s.id) for s in servers))
        await asyncio.gather(*(cloud.client.wait_for_status(s.id, {"DELETED"}, timeout=60)
                               for s in servers))
        await _assert_consistent(cloud, db)
        assert [a for i in await db.instances.list(InstanceQuery(include_deleted=True))
                for a in await db.nodes.allocations(i.id)] == []
        assert _compute_ports(await db.networks.list_ports(viewer=None)) == []
        assert all(not guests for guests in _guests(cloud.state_dir).values())
    finally:
        await db.close()
    cloud.cluster.check_alive()
    return ended


def _compute_ports(ports: Sequence[Any]) -> list[Any]:
    return [p for p in ports if p.device_owner.startswith("compute:")]


async def _assert_consistent(cloud: Cloud, db: SqlDatabase) -> None:
    await assert_books_balance(db, timeout=30)
    instances = await db.instances.list(InstanceQuery())
    live = {i.id for i in instances if not i.deleted}
    orphans = [(p.id, p.device_id) for p in _compute_ports(await db.networks.list_ports(
        viewer=None)) if p.device_id not in live]
    assert orphans == [], "ports of no live instance"
    active_on = {(i.host, i.id) for i in instances
                 if not i.deleted and i.vm_state.value == "active"}
    stray = [(host, guest) for host, guests in _guests(cloud.state_dir).items()
             for guest in guests if (host, guest) not in active_on]
    assert stray == [], "guests (disks) of no ACTIVE instance on their host"


@dataclass
class Answers:
    """The status codes the API gave while a server was down."""

    codes: Counter[int]

    def server_errors(self) -> dict[int, int]:
        return {code: n for code, n in self.codes.items() if code >= 500 and code != 503}


@contextlib.asynccontextmanager
async def _poll_api(cloud: Cloud) -> AsyncIterator[Answers]:
    """Keep asking the API for lists (servers, images, ports, flavors) until the block
    ends; count the answers."""
    answers = Answers(Counter())
    paths = ["/v2.1/servers/detail?limit=5", "/image/v2/images", "/v2.1/flavors",
             "/networking/v2.0/ports", "/v2.1/os-hypervisors"]
    stop = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(base_url=cloud.cluster.api_url, timeout=30,
                                     headers={"X-Auth-Token": cloud.token}) as http:
            while not stop.is_set():
                for path in paths:
                    answers.codes[(await http.get(path)).status_code] += 1
                await asyncio.sleep(0.05)

    task = asyncio.create_task(poll())
    try:
        yield answers
    finally:
        stop.set()
        await task


async def test_rabbitmq_restarted_during_50_builds(tmp_path: Path, pg: PrivatePostgres,
                                                   rabbit: PrivateRabbit) -> None:
    async with _cloud(tmp_path, pg, rabbit, hosts=["q1", "q2"], spawn_delay=1.0) as cloud:
        await _boot(cloud, "rmq", BUILDS)
        await _wait_until(cloud.client, lambda c: c["ACTIVE"] >= 5, timeout=60)
        rabbit.stop_app()
        await asyncio.sleep(3)
        rabbit.start_app()
        ended = await _assert_clean(cloud, pg)
        assert sum(ended.values()) == BUILDS
        # After the broker came back, the cloud builds again.
        async with _cloud_again(cloud):
            pass


@contextlib.asynccontextmanager
async def _cloud_again(cloud: Cloud) -> AsyncIterator[None]:
    """Boot two more servers: both ACTIVE; then clean again."""
    await _boot(cloud, "again", 2)
    servers = await cloud.client.list_servers(name="^again")
    done = await asyncio.gather(*(cloud.client.wait_for_status(s.id, {"ACTIVE", "ERROR"},
                                                               timeout=60) for s in servers))
    assert {s.status for s in done} == {"ACTIVE"}, done
    yield
    await asyncio.gather(*(cloud.client.delete_server(s.id) for s in done))
    await asyncio.gather(*(cloud.client.wait_for_status(s.id, {"DELETED"}, timeout=60)
                           for s in done))


async def test_postgres_restarted_during_50_builds(tmp_path: Path, pg: PrivatePostgres,
                                                   rabbit: PrivateRabbit) -> None:
    async with _cloud(tmp_path, pg, rabbit, hosts=["p1", "p2"], spawn_delay=1.0) as cloud:
        await _boot(cloud, "pg", BUILDS)
        await _wait_until(cloud.client, lambda c: c["ACTIVE"] >= 5, timeout=60)
        async with _poll_api(cloud) as answers:
            pg.stop()
            await asyncio.sleep(3)
            pg.start()
            await asyncio.sleep(1)
        assert answers.codes[503] > 0, answers
        assert answers.server_errors() == {}, answers
        ended = await _assert_clean(cloud, pg)
        assert sum(ended.values()) == BUILDS
        async with _cloud_again(cloud):
            pass


async def test_compute_killed_mid_spawn_and_restarted(tmp_path: Path, pg: PrivatePostgres,
                                                      rabbit: PrivateRabbit) -> None:
    async with _cloud(tmp_path, pg, rabbit, hosts=["k1"], spawn_delay=120) as cloud:
        await _boot(cloud, "cut", 5)
        async with asyncio.timeout(60):
            while {s.task_state for s in await cloud.client.list_servers()} != {"spawning"}:
                await asyncio.sleep(0.2)
        assert len(_guests(cloud.state_dir)["k1"]) == 5   # defined, disks made

        killed = cloud.cluster.processes.pop("compute-k1")
        killed.kill()                        # SIGKILL: no clean-up of any kind
        killed.wait(timeout=10)
        cloud.cluster.env["STRATO_COMPUTE__FAKE__SPAWN_DELAY"] = "0.2"
        cloud.cluster.start("compute-k1-restarted", "compute", "--host", "k1")

        ended = await _assert_clean(cloud, pg)
        assert ended == Counter({"ERROR": 5})
        assert {s.fault["message"] for s in await cloud.client.list_servers()
                if s.fault} <= {"Build interrupted: the compute service restarted during "
                                "spawning"}
        async with _cloud_again(cloud):
            pass


async def test_api_killed_mid_upload_and_restarted(tmp_path: Path, pg: PrivatePostgres,
                                                   rabbit: PrivateRabbit) -> None:
    async with _cloud(tmp_path, pg, rabbit, hosts=["u1"], spawn_delay=0.2) as cloud:
        record = await cloud.client.create_image_record(
            name="slow", disk_format="raw", container_format="bare")
        image_id = str(record["id"])
        store = cloud.cluster.data_dir / "images"

        async def slowly() -> AsyncIterator[bytes]:
            for _ in range(600):
                yield b"\0" * 65536
                await asyncio.sleep(0.1)

        upload = asyncio.create_task(cloud.client.upload_image_data(image_id, slowly()))
        async with asyncio.timeout(30):
            while (await cloud.client.request("GET", f"/image/v2/images/{image_id}")
                   ).json()["status"] != "saving" or not list(store.glob("*.part")):
                await asyncio.sleep(0.1)

        killed = cloud.cluster.processes.pop("api")
        killed.kill()
        killed.wait(timeout=10)
        with pytest.raises(httpx.TransportError):
            await upload
        cloud.cluster.start("api-restarted", "api")
        cloud.cluster.wait_for_api()

        image = (await cloud.client.request("GET", f"/image/v2/images/{image_id}")).json()
        assert image["status"] in {"queued", "killed"}, image
        assert list(store.glob("*.part")) == []
        if image["status"] == "queued":   # it takes its data again
            await cloud.client.upload_image_data(image_id, b"\0" * 4096)
        await cloud.client.request("DELETE", f"/image/v2/images/{image_id}")
        assert [p.name for p in store.iterdir() if image_id in p.name] == []

        await _boot(cloud, "after", 3)
        ended = await _assert_clean(cloud, pg)
        assert ended == Counter({"ACTIVE": 3})
