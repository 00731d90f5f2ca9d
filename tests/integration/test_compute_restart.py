"""A compute process killed with SIGKILL in the middle of a build, then started again:
the build it cut off goes to ERROR with a fault and frees its allocation. Every role is
its own OS process, over RabbitMQ (a throwaway vhost) and PostgreSQL (a throwaway
database), as in ``test_distributed``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strato.client import ApiClient
from strato.client.auth import password_token
from strato.testing.cluster import Cluster, run_cluster
from strato.testing.infra import temporary_database, temporary_vhost

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

ADMIN_PASSWORD = "strato-admin"  # identity.admin_password's default
HOST = "r1"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with temporary_database() as db_url:
        with temporary_vhost() as amqp_url, run_cluster(
                data_dir=tmp_path, db_url=db_url, transport_url=amqp_url,
                compute_hosts=[HOST],
                extra_env={"STRATO_COMPUTE__FAKE__SPAWN_DELAY": "120"}) as running:
            yield running


async def _hypervisor(client: ApiClient) -> dict[str, object]:
    found: list[dict[str, object]] = (await client.request(
        "GET", "/v2.1/os-hypervisors/detail")).json()["hypervisors"]
    return next(h for h in found if h["hypervisor_hostname"] == HOST)


async def test_killed_compute_fails_the_interrupted_build_when_it_restarts(
        cluster: Cluster) -> None:
    token = await password_token(cluster.api_url, user="admin", password=ADMIN_PASSWORD,
                                 project="admin")
    async with ApiClient(cluster.api_url, token, timeout=60) as client:
        async with asyncio.timeout(60):
            while not (await client.request("GET", "/v2.1/os-hypervisors")).json()[
                    "hypervisors"]:
                await asyncio.sleep(0.2)
        image = await client.create_image("img", b"\0" * 4096, disk_format="raw")
        flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
        server_id = await client.create_server("cut", image=image, flavor=flavor)
        async with asyncio.timeout(60):
            while (await client.get_server(server_id)).task_state != "spawning":
                await asyncio.sleep(0.1)
        assert (await _hypervisor(client))["running_vms"] == 1

        killed = cluster.processes.pop(f"compute-{HOST}")
        killed.kill()                      # SIGKILL: no clean-up of any kind
        killed.wait(timeout=10)
        assert (await client.get_server(server_id)).task_state == "spawning"

        cluster.env["STRATO_COMPUTE__FAKE__SPAWN_DELAY"] = "0"
        cluster.start(f"compute-{HOST}-restarted", "compute", "--host", HOST)
        server = await client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=60)
        assert server.status == "ERROR" and server.task_state is None
        assert server.fault is not None and server.fault["message"] == (
            "Build interrupted: the compute service restarted during spawning")
        async with asyncio.timeout(30):
            while (hv := await _hypervisor(client))["running_vms"] or hv["memory_mb_used"]:
                await asyncio.sleep(0.2)
        cluster.check_alive()
        assert "instance.build.interrupted" in cluster.log(f"compute-{HOST}-restarted")

        # The restarted host builds again.
        again = await client.create_server("again", image=image, flavor=flavor)
        assert (await client.wait_for_status(again, {"ACTIVE", "ERROR"},
                                             timeout=60)).status == "ACTIVE"
