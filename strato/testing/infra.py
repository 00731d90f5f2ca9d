"""Throwaway PostgreSQL databases and RabbitMQ vhosts, and starting those servers when
they are not running (there is no systemd on the test machines).

Everything created here carries a random suffix and is removed on exit.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

__all__ = ["PG_ADMIN_DSN", "ensure_postgres", "ensure_rabbitmq", "temporary_database",
           "temporary_vhost"]

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up on 127.0.0.1:{port}")


def ensure_postgres() -> None:
    """Start the local PostgreSQL cluster if it does not answer on 5432."""
    if _port_open(5432):
        return
    version = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: p.name)[-1].name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                   check=True, timeout=120)
    _wait_port(5432, "PostgreSQL")


def ensure_rabbitmq() -> None:
    """Start the local RabbitMQ if it does not answer on 5672."""
    if _port_open(5672):
        return
    subprocess.run(["rabbitmq-server", "-detached"], check=True, timeout=120)
    _wait_port(5672, "RabbitMQ")
    # The port opens before the broker accepts logins; wait until rabbitmqctl answers.
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, timeout=120,
                   capture_output=True)


@contextlib.asynccontextmanager
async def temporary_database(prefix: str = "strato_test") -> AsyncIterator[str]:
    """Create an empty PostgreSQL database; yield its asyncpg SQLAlchemy URL; drop it."""
    import asyncpg

    ensure_postgres()
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await admin.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def temporary_vhost(prefix: str = "strato-test") -> Iterator[str]:
    """Create a RabbitMQ vhost for guest; yield its amqp:// URL; delete it."""
    ensure_rabbitmq()
    name = f"{prefix}-{secrets.token_hex(4)}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)
