"""Private PostgreSQL and RabbitMQ servers for fault tests: each test that restarts a
server gets its own, on free loopback ports, so the machine's shared servers (and the
tests using them) never notice.

Both are context managers that stop and remove everything they started, even when the
test fails: :func:`private_postgres` runs ``initdb`` and ``pg_ctl`` as the ``postgres``
user in a fresh directory; :func:`private_rabbitmq` runs a second RabbitMQ node, with its
own name, ports, data directory, configuration and Erlang cookie, as a child process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from strato.testing.cluster import free_port

__all__ = ["PrivatePostgres", "PrivateRabbit", "private_postgres", "private_rabbitmq"]

_PG_BIN = Path("/usr/lib/postgresql")
_RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _pg_bin(name: str) -> str:
    versions = sorted((p for p in _PG_BIN.iterdir() if (p / "bin" / name).exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)
    if not versions:
        raise RuntimeError(f"no PostgreSQL {name} under {_PG_BIN}")
    return str(versions[-1] / "bin" / name)


@dataclass
class PrivatePostgres:
    """One PostgreSQL cluster of our own: ``url`` is its ``strato`` database."""

    data_dir: Path
    socket_dir: Path
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/strato"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("pg_ctl"), "-D",
                        str(self.data_dir), *args], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._pg_ctl("-o", options, "-l", str(self.log_file), "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: every session is ended (SQLSTATE 57P01), as on a restart."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        return None


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh PostgreSQL cluster (trust auth, loopback only) with an empty ``strato``
    database; stopped and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="strato-pg-"))
    try:
        shutil.chown(base, "postgres", "postgres")
        server = PrivatePostgres(data_dir=base / "data", socket_dir=base,
                                 port=free_port(), log_file=base / "postgres.log")
        subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D",
                        str(server.data_dir), "-U", "postgres", "--auth=trust",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        server.start()
        try:
            subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("createdb"), "-h",
                            "127.0.0.1", "-p", str(server.port), "-U", "postgres", "strato"],
                           check=True, capture_output=True, timeout=60)
            yield server
        finally:
            _stop_postgres(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _stop_postgres(server: PrivatePostgres) -> None:
    pid = server.pid()
    if pid is None:
        return
    try:
        server.stop()
    except subprocess.SubprocessError:
        # It did not stop in time: end it (it is ours: we started it in our directory).
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)


@dataclass
class PrivateRabbit:
    """One RabbitMQ node of our own; ``url`` is its default vhost as guest."""

    node: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run([str(_RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                              env=self.env, check=True, capture_output=True, text=True,
                              timeout=timeout)
        return done.stdout

    def stop_app(self) -> None:
        """Stop the broker application (every connection is closed); the node stays."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")


@contextlib.contextmanager
def private_rabbitmq() -> Iterator[PrivateRabbit]:
    """A second RabbitMQ node (``strato-fault-<random>@localhost``) on free ports, with
    its own data, logs, configuration and cookie; stopped, and its process gone, on exit."""
    base = Path(tempfile.mkdtemp(prefix="strato-rabbit-"))
    node = f"strato-fault-{secrets.token_hex(4)}@localhost"
    port, dist_port = free_port(), free_port()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n"
                                        "loopback_users = none\n")
    (base / "rabbitmq-env.conf").write_text("")
    cookie = base / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update({
        "HOME": str(base), "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    })
    log = open(base / "server.out", "wb")  # noqa: SIM115 (owned by the child)
    process = subprocess.Popen([str(_RABBIT_BIN / "rabbitmq-server")], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    log.close()
    rabbit = PrivateRabbit(node=node, port=port, env=env, process=process)
    try:
        _await_node(rabbit)
        yield rabbit
    finally:
        _stop_rabbit(rabbit)
        shutil.rmtree(base, ignore_errors=True)


def _await_node(rabbit: PrivateRabbit, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if rabbit.process.poll() is not None:
            raise RuntimeError(f"RabbitMQ node {rabbit.node} exited "
                               f"({rabbit.process.returncode})")
        try:
            rabbit.ctl("await_startup", timeout=max(5.0, deadline - time.monotonic()))
            return
        except subprocess.SubprocessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _stop_rabbit(rabbit: PrivateRabbit) -> None:
    """``rabbitmqctl stop``, then the process group we started, by its PID."""
    if rabbit.process.poll() is None:
        with contextlib.suppress(subprocess.SubprocessError):
            rabbit.ctl("stop", timeout=60)
    try:
        rabbit.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    # The script execs beam in its session; whatever of that session is left is ours.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rabbit.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        rabbit.process.wait(timeout=10)
