"""Distributed mode for real: api, conductor, scheduler and two computes as five OS
processes, talking over RabbitMQ (a throwaway vhost) and PostgreSQL (a throwaway
database). The computes have no database settings at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strato.client import ApiClient
from strato.client.auth import password_token
from strato.testing.cluster import Cluster, run_cluster
from strato.testing.infra import temporary_database, temporary_vhost

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

ADMIN_PASSWORD = "strato-admin"  # identity.admin_password's default


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with temporary_database() as db_url:
        with temporary_vhost() as amqp_url, run_cluster(
                data_dir=tmp_path, db_url=db_url, transport_url=amqp_url,
                compute_hosts=["d1", "d2"],
                extra_env={"STRATO_COMPUTE__FAKE__SPAWN_DELAY": "0.2"}) as running:
            yield running


async def _wait_for_hosts(client: ApiClient, count: int) -> None:
    async with asyncio.timeout(60):
        while len((await client.request("GET", "/v2.1/os-hypervisors")).json()
                  ["hypervisors"]) < count:
            await asyncio.sleep(0.2)


async def test_servers_become_active_across_processes(cluster: Cluster) -> None:
    token = await password_token(cluster.api_url, user="admin", password=ADMIN_PASSWORD,
                                 project="admin")
    async with ApiClient(cluster.api_url, token, timeout=60) as client:
        await _wait_for_hosts(client, 2)
        image = await client.create_image("img", b"\0" * 8192, disk_format="raw")
        flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
        resp = await client.request("POST", "/v2.1/servers", json={"server": {
            "name": "dist", "imageRef": image, "flavorRef": flavor,
            "min_count": 10, "max_count": 10}})
        request_id = resp.headers["x-openstack-request-id"]
        servers = await client.list_servers(name="^dist")
        assert len(servers) == 10
        done = await asyncio.gather(*(client.wait_for_status(s.id, {"ACTIVE", "ERROR"},
                                                             timeout=60) for s in servers))
        assert {s.status for s in done} == {"ACTIVE"}
        assert set(Counter(s.host for s in done)) == {"d1", "d2"}

        # The request id of the POST reached both computes' logs, over RabbitMQ.
        cluster.check_alive()
        assert request_id in cluster.log("compute-d1") + cluster.log("compute-d2")
        assert request_id in cluster.log("conductor")

        await asyncio.gather(*(client.delete_server(s.id) for s in done))
        await asyncio.gather(*(client.wait_for_status(s.id, {"DELETED"}, timeout=60)
                               for s in done))
        hypervisors = (await client.request("GET", "/v2.1/os-hypervisors/detail")).json()
        assert all(h["memory_mb_used"] == 0 and h["running_vms"] == 0
                   for h in hypervisors["hypervisors"])
