"""Run strato's roles as separate OS processes on this machine (distributed mode).

Each process gets the same settings through ``STRATO_*`` environment variables. The
launcher keeps the PIDs it started and ends only those, first with SIGTERM (a clean
shutdown), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Cluster", "free_port", "run_cluster"]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    env: dict[str, str]
    data_dir: Path
    api_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def strato(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a one-shot ``strato`` command (e.g. ``db upgrade``) with the cluster's env."""
        return subprocess.run([sys.executable, "-m", "strato", *args], env=self.env,
                              check=check, capture_output=True, text=True, timeout=120)

    def start(self, name: str, *args: str) -> None:
        """Start one long-running role, its output in ``<data_dir>/<name>.log``."""
        log = open(self.data_dir / f"{name}.log", "wb")  # noqa: SIM115 (owned by the child)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "strato", *args], env=self.env, stdout=log,
            stderr=subprocess.STDOUT)
        log.close()

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"processes exited: {dead}; logs in {self.data_dir}")

    def wait_for_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.api_url + "/", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"API at {self.api_url} did not answer")

    def log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def run_cluster(*, data_dir: Path, db_url: str, transport_url: str, compute_hosts: Sequence[str],
                extra_env: Mapping[str, str] | None = None) -> Iterator[Cluster]:
    """Migrate and seed the database, start api, conductor, scheduler and one compute per
    host, wait for the API, yield; stop everything on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    env.update({
        "STRATO_DATA_DIR": str(data_dir), "STRATO_DB__URL": db_url,
        "STRATO_RPC__TRANSPORT_URL": transport_url, "STRATO_API__LISTEN": f"127.0.0.1:{port}",
        "STRATO_COMPUTE__REPORT_INTERVAL": "1.0", "PYTHONUNBUFFERED": "1",
        "STRATO_COMPUTE__DRIVER": "fake",
        **(extra_env or {}),
    })
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(env=env, data_dir=data_dir, api_url=f"http://127.0.0.1:{port}")
    cluster.strato("db", "upgrade")
    cluster.strato("bootstrap")
    try:
        cluster.start("conductor", "conductor")
        cluster.start("scheduler", "scheduler")
        for host in compute_hosts:
            cluster.start(f"compute-{host}", "compute", "--host", host)
        cluster.start("api", "api")
        cluster.wait_for_api()
        yield cluster
    finally:
        cluster.stop()
