"""How fast the scheduler decides, at 1,000 or 10,000 hosts.

    python bench/scheduler.py --hosts 1000
    python bench/scheduler.py --hosts 10000

H fake compute nodes with varied free capacity (and a heartbeat each, so every one is
up), in a fresh database (SQLite by default, or ``--database-url``). The scheduler
service's own ``select_destinations`` places D single-instance requests one after the
other, in process (no bus), with its default filters and weigher, writing each claim to
the database as in production.

Prints one JSON line: hosts, decisions, decisions_per_s, p50_ms, p99_ms, db.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strato.db.migrate import upgrade  # noqa: E402
from strato.db.sql import SqlDatabase  # noqa: E402
from strato.domain.context import admin_context  # noqa: E402
from strato.domain.ids import (  # noqa: E402
    FlavorId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    ReservationId,
    UserId,
    new_uuid,
)
from strato.domain.images import Image, ImageStatus  # noqa: E402
from strato.domain.requests import BootRequest  # noqa: E402
from strato.domain.resources import Flavor, NodeCapacity, Resources  # noqa: E402
from strato.rpc.contracts.scheduler import SelectDestinations  # noqa: E402
from strato.scheduler.service import SchedulerDeps, select_destinations  # noqa: E402

COMPUTE = "strato-compute"
FLAVOR = Flavor(id=FlavorId("1"), name="m1.tiny", vcpus=1, memory_mb=512, root_gb=1)
IMAGE = Image(id=ImageId("bench"), name="bench", status=ImageStatus.ACTIVE)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def populate(db: SqlDatabase, hosts: int, rng: random.Random) -> None:
    """Nodes of 8-64 vCPUs, 16-256 GiB and 200-2000 GB, reported in batches of 500."""
    caps = [NodeCapacity(host=HostName(f"bench-{i:05d}"), node=NodeName(f"bench-{i:05d}"),
                         total=Resources(vcpus=rng.choice((8, 16, 32, 64)),
                                         memory_mb=rng.choice((16, 32, 64, 128, 256)) * 1024,
                                         disk_gb=rng.randrange(200, 2000)))
            for i in range(hosts)]
    for start in range(0, hosts, 500):
        await db.nodes.report(caps[start:start + 500])
    for cap in caps:
        await db.services.heartbeat(binary=COMPUTE, host=cap.host, topic="compute")


def request() -> BootRequest:
    return BootRequest(instance_id=InstanceId(new_uuid()), project_id=ProjectId("bench"),
                       user_id=UserId("bench"), name="bench", flavor=FLAVOR, image=IMAGE,
                       reservation_id=ReservationId("r-bench"))


async def run(hosts: int, decisions: int, url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="strato-sched-bench-") as tmp:
        db_url = url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        await upgrade(db_url)
        db = await SqlDatabase.open(db_url, service_down_time=3600)
        try:
            await populate(db, hosts, random.Random(42))
            deps = SchedulerDeps(db=db)
            ctx = admin_context()
            times = []
            started = time.perf_counter()
            for _ in range(decisions):
                t0 = time.perf_counter()
                await select_destinations(ctx, SelectDestinations(requests=(request(),)),
                                          deps=deps)
                times.append((time.perf_counter() - t0) * 1000)
            elapsed = time.perf_counter() - started
        finally:
            await db.close()
    return {"hosts": hosts, "decisions": decisions,
            "decisions_per_s": round(decisions / elapsed, 1),
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
            "db": "postgresql" if url and url.startswith("postgresql") else "sqlite"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--database-url", default=None,
                        help="an empty database to use instead of a temporary SQLite file")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.hosts, args.decisions, args.database_url))),
          flush=True)


if __name__ == "__main__":
    main()
