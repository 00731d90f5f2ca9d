"""Create servers as fast as the API lets us and time it, on the fake driver.

    python bench/create_servers.py --hosts 10 --servers 200 --mode embedded
    python bench/create_servers.py --hosts 10 --servers 200 --mode distributed

embedded: ``strato up --hosts H`` in one process (SQLite, in-process bus).
distributed: api, conductor, scheduler and H computes as separate processes over
RabbitMQ and PostgreSQL (a throwaway vhost and database).

With ``--network`` every server gets a NIC on one network (a port allocated in its build,
plugged by the fake data plane); without it, none.

Prints one JSON line: mode, hosts, servers, network, servers_per_s (first POST to last ACTIVE),
post_p50_ms, post_p99_ms, active_p50_ms, active_p99_ms (POST sent to ACTIVE seen),
errors. ACTIVE time is the server's ``launched_at`` (read by a poll every 0.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strato.client import ApiClient, ApiError  # noqa: E402
from strato.client.auth import password_token
from strato.testing.cluster import Cluster, free_port, run_cluster  # noqa: E402
from strato.testing.infra import temporary_database, temporary_vhost  # noqa: E402

ADMIN_PASSWORD = "strato-admin"  # identity.admin_password's default


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def embedded_cluster(data_dir: Path, hosts: int) -> Iterator[Cluster]:
    port = free_port()
    cluster = Cluster(env={
        **{k: v for k, v in os.environ.items() if not k.startswith("STRATO_")},
        "STRATO_DATA_DIR": str(data_dir), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
        "STRATO_COMPUTE__REPORT_INTERVAL": "1.0", "STRATO_LOG_LEVEL": "WARNING",
        "STRATO_COMPUTE__HOST": "bench", "STRATO_COMPUTE__DRIVER": "fake"}, data_dir=data_dir,
        api_url=f"http://127.0.0.1:{port}")
    cluster.start("up", "up", "--hosts", str(hosts))
    try:
        cluster.wait_for_api()
        yield cluster
    finally:
        cluster.stop()


async def wait_for_hosts(client: ApiClient, hosts: int, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            resp = await client.request("GET", "/v2.1/os-hypervisors")
            if len(resp.json()["hypervisors"]) >= hosts:
                return
            await asyncio.sleep(0.2)


async def make_network(client: ApiClient) -> str:
    """A network with a subnet big enough for every server's port (the project's port
    quota, Neutron's 500, bounds a run)."""
    net = (await client.request("POST", "/networking/v2.0/networks", json={
        "network": {"name": "bench"}})).json()["network"]
    await client.request("POST", "/networking/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.200.0.0/16", "ip_version": 4}})
    return str(net["id"])


async def drive(api_url: str, hosts: int, servers: int, concurrency: int,
                network: bool = False) -> dict[str, Any]:
    token = await password_token(api_url, user="admin", password=ADMIN_PASSWORD,
                                 project="admin")
    async with ApiClient(api_url, token, timeout=120) as client:
        await wait_for_hosts(client, hosts)
        image = await client.create_image("bench", b"\0" * 65536, disk_format="raw")
        flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
        # Hundreds of servers in one project: lift Nova's default quotas for the run.
        await client.request("PUT", "/v2.1/os-quota-class-sets/default", json={
            "quota_class_set": {"instances": -1, "cores": -1, "ram": -1}})
        nics: Any = [{"uuid": await make_network(client)}] if network else "none"
        sent: dict[str, float] = {}
        active: dict[str, float] = {}
        post_ms: list[float] = []
        errors = 0
        gate = asyncio.Semaphore(concurrency)

        async def create(i: int) -> None:
            nonlocal errors
            async with gate:
                t0 = time.time()
                try:
                    sid = await client.create_server(f"bench-{i}", image=image, flavor=flavor,
                                                     networks=nics)
                except ApiError:
                    errors += 1
                    return
                post_ms.append((time.time() - t0) * 1000)
                sent[sid] = t0

        async def watch() -> None:
            # ACTIVE time is the server's own launched_at (same machine, same clock),
            # so a slow poll keeps the observer's load off the figures.
            nonlocal errors
            while len(active) + errors < servers:
                await asyncio.sleep(0.5)
                resp = await client.request("GET", "/v2.1/servers/detail",
                                            params={"limit": 1000})
                for s in resp.json()["servers"]:
                    if s["id"] in active or s["id"] not in sent:
                        continue
                    if s["status"] == "ACTIVE":
                        launched = datetime.fromisoformat(s["OS-SRV-USG:launched_at"])
                        active[s["id"]] = launched.replace(tzinfo=UTC).timestamp()
                    elif s["status"] == "ERROR":
                        errors += 1
                        active[s["id"]] = float("nan")

        start = time.time()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(watch())
            await asyncio.gather(*(create(i) for i in range(servers)))
        ok = {k: v for k, v in active.items() if v == v}
        end = max(ok.values()) if ok else time.time()
        active_ms = [(ok[k] - sent[k]) * 1000 for k in ok]
        return {
            "servers_per_s": round(len(ok) / (end - start), 2),
            "post_p50_ms": round(percentile(post_ms, 0.5), 1),
            "post_p99_ms": round(percentile(post_ms, 0.99), 1),
            "active_p50_ms": round(percentile(active_ms, 0.5), 1),
            "active_p99_ms": round(percentile(active_ms, 0.99), 1),
            "errors": errors,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="POSTs in flight at once")
    parser.add_argument("--network", action="store_true",
                        help="give every server a NIC on one network")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        data_dir = Path(tmp)
        if args.mode == "embedded":
            with embedded_cluster(data_dir, args.hosts) as cluster:
                figures = await drive(cluster.api_url, args.hosts, args.servers,
                                      args.concurrency, args.network)
        else:
            async with temporary_database("strato_bench") as db_url:
                with temporary_vhost("strato-bench") as amqp_url, run_cluster(
                        data_dir=data_dir, db_url=db_url, transport_url=amqp_url,
                        compute_hosts=[f"bench{i + 1}" for i in range(args.hosts)],
                        extra_env={"STRATO_LOG_LEVEL": "WARNING"}) as cluster:
                    figures = await drive(cluster.api_url, args.hosts, args.servers,
                                          args.concurrency, args.network)
    print(json.dumps({"mode": args.mode, "hosts": args.hosts, "servers": args.servers,
                      "network": args.network, **figures}))


if __name__ == "__main__":
    asyncio.run(main())
