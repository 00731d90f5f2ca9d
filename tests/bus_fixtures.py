"""Fixtures for tests that run on every bus transport.

``bus`` is parametrized over ``local`` and ``amqp``; ``peer`` is a second bus on the same
broker (a second connection on RabbitMQ, the same object in-process), so a test can put a
server "in another process". The RabbitMQ vhost is created once per test session and
deleted at its end; a broker that is not running is started, never skipped.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from strato.rpc.amqp import AmqpBus
from strato.rpc.bus import Bus
from strato.rpc.local import LocalBus

__all__ = ["bus", "peer", "rabbitmq_url", "topic"]

BROKER = ("127.0.0.1", 5672)
BROKER_START_TIMEOUT = 60.0


def _broker_listening() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1.0):
            return True
    except OSError:
        return False


def _ensure_broker() -> None:
    if _broker_listening():
        return
    subprocess.run(["rabbitmq-server", "-detached"], check=True)
    deadline = time.monotonic() + BROKER_START_TIMEOUT
    while not _broker_listening():
        if time.monotonic() > deadline:
            pytest.fail(f"RabbitMQ did not start listening on {BROKER} within "
                        f"{BROKER_START_TIMEOUT:g} s")
        time.sleep(0.5)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The URL of a fresh vhost on the local broker, deleted when the session ends."""
    _ensure_broker()
    vhost = f"strato-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{BROKER[0]}:{BROKER[1]}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(params=["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """A bus of each transport; closed (stopping its subscriptions) after the test."""
    opened: Bus
    if request.param == "local":
        opened = LocalBus()
    else:
        opened = await AmqpBus.connect(request.getfixturevalue("rabbitmq_url"))
    yield opened
    await opened.close()


@pytest.fixture
async def peer(request: pytest.FixtureRequest, bus: Bus) -> AsyncIterator[Bus]:
    """Another bus on the same broker as ``bus``."""
    if isinstance(bus, LocalBus):
        yield bus  # one process has one in-memory broker
        return
    other = await AmqpBus.connect(request.getfixturevalue("rabbitmq_url"))
    yield other
    await other.close()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses: queues in the session's vhost outlive one test."""
    return f"test-{uuid.uuid4().hex[:8]}"
