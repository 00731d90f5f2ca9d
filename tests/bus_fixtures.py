"""Fixtures for tests that run on every bus transport.

``bus`` is parametrized over ``local`` and ``amqp``; ``peer`` is a second bus on the same
broker (a second connection on RabbitMQ, the same object in-process), so a test can put a
server "in another process". The RabbitMQ vhost is created once per test session and
deleted at its end; a broker that is not running is started, never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from strato.rpc.amqp import AmqpBus
from strato.rpc.bus import Bus
from strato.rpc.local import LocalBus
from strato.testing.infra import temporary_vhost

__all__ = ["bus", "peer", "rabbitmq_url", "topic"]

@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The URL of a fresh vhost on the local broker (started if it is not running),
    deleted when the session ends."""
    with temporary_vhost() as url:
        yield url


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
