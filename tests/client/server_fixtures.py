"""A real strato API for client tests: ``strato up`` (fake driver) as an OS process on a
free loopback port, its data directory under pytest's tmp, stopped by PID afterwards.

Clients log in as a user would: with a password, through strato's Identity API (Keystone
v3) and the service catalog it returns. The admin's password is set here; more users,
each a ``member`` of a project of their own, are written straight into the database of
the running API (:func:`add_member`). The static admin token (:attr:`RunningApi.token`)
stays for the tests that use it explicitly.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strato.config import Settings
from strato.db.sql import SqlDatabase
from strato.domain.identity import DEFAULT_DOMAIN_ID
from strato.identity.passwords import hash_password
from strato.testing.cluster import Cluster, free_port

TOKEN = "client-test-admin"
SERVICE_TOKEN = "client-test-service"
ADMIN_PASSWORD = "client-test-admin-password"
MIB = 1024 * 1024

OPENSTACK = Path(sys.executable).parent / "openstack"
COMMAND_TIMEOUT = 180  # one CLI process: ~2 s of imports, plus --wait polling


@dataclass(frozen=True)
class Account:
    """A user's password login to one project, both in the Default domain."""

    username: str
    password: str
    project_name: str

    def auth(self, api_url: str) -> dict[str, str]:
        """keystoneauth's ``password`` options: a clouds.yaml ``auth`` section, or
        ``openstack.connect(auth=...)``."""
        return {"auth_url": f"{api_url}/identity/v3", "username": self.username,
                "password": self.password, "project_name": self.project_name,
                "user_domain_name": "Default", "project_domain_name": "Default"}


ADMIN = Account(username="admin", password=ADMIN_PASSWORD, project_name="admin")


@dataclass(frozen=True)
class RunningApi:
    """One ``strato up`` process: its URL, admin token and PID."""

    cluster: Cluster
    url: str
    token: str

    @property
    def pid(self) -> int:
        return self.cluster.processes["up"].pid

    @property
    def image_url(self) -> str:
        return f"{self.url}/image"

    @property
    def admin(self) -> Account:
        return ADMIN

    @property
    def clouds_yaml(self) -> Path:
        """The clouds.yaml ``strato up`` wrote: cloud ``strato``, the admin's password."""
        return self.cluster.data_dir / "clouds.yaml"

    @property
    def database_url(self) -> str:
        """The database of the running API (SQLite in WAL mode: a second connection from
        the test process is fine)."""
        return Settings.model_construct(data_dir=self.cluster.data_dir).database_url


def start_api(data_dir: Path, extra_env: Mapping[str, str] | None = None) -> Cluster:
    """Start ``strato up`` with its own data directory (and ``extra_env`` settings); wait
    until the API answers and has written its clouds.yaml (the default flavors are in by
    then)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    env.update({"STRATO_DATA_DIR": str(data_dir), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
                "STRATO_API__ADMIN_TOKEN": TOKEN, "STRATO_API__SERVICE_TOKEN": SERVICE_TOKEN,
                "STRATO_IDENTITY__ADMIN_PASSWORD": ADMIN_PASSWORD,
                "STRATO_LOG_LEVEL": "WARNING",
                "STRATO_COMPUTE__HOST": "client-test", "STRATO_COMPUTE__DRIVER": "fake",
                "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(env=env, data_dir=data_dir, api_url=f"http://127.0.0.1:{port}")
    cluster.start("up", "up")
    try:
        cluster.wait_for_api()
        # strato up writes it before its API answers.
        assert (data_dir / "clouds.yaml").exists(), cluster.log("up")[-3000:]
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module", name="api")
def api_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """One ``strato up`` for the module's tests."""
    cluster = start_api(tmp_path_factory.mktemp("strato"))
    try:
        yield RunningApi(cluster=cluster, url=cluster.api_url, token=TOKEN)
    finally:
        cluster.stop()


def add_member(api: RunningApi, project_name: str, username: str, password: str) -> Account:
    """A new project and a user holding only the ``member`` role on it, with a password:
    written into the running API's database with strato's own repository (idempotent)."""
    asyncio.run(_add_member(api.database_url, project_name, username, password))
    return Account(username=username, password=password, project_name=project_name)


async def _add_member(url: str, project_name: str, username: str, password: str) -> None:
    db = await SqlDatabase.open(url)
    try:
        identity = db.identity
        await identity.ensure_domain(DEFAULT_DOMAIN_ID, "Default")
        project = await identity.ensure_project(project_name, "client tests")
        user = await identity.ensure_user(username, project.id)
        role = await identity.ensure_role("member")
        await identity.assign_role(user.id, project.id, role.id)
        await identity.set_password_hash(user.id, hash_password(password))
    finally:
        await db.close()


def write_clouds_yaml(path: Path, api_url: str, clouds: Mapping[str, Account]) -> Path:
    """A clouds.yaml with one password-auth cloud per account, nothing but the Identity
    API's URL in it (every other endpoint comes from the catalog). Values go through
    ``json``, which YAML reads."""
    entries = {name: {"auth_type": "password", "auth": account.auth(api_url),
                      "identity_api_version": 3, "region_name": "RegionOne",
                      "interface": "public"}
               for name, account in clouds.items()}
    path.write_text("clouds:\n" + "".join(f"  {json.dumps(name)}: {json.dumps(entry)}\n"
                                          for name, entry in entries.items()))
    return path


@dataclass(frozen=True)
class Cli:
    """Runs the real ``openstack`` CLI (python-openstackclient, pinned) against one cloud
    of a clouds.yaml: each command its own process from the venv's ``bin``, without a
    shell, with no ``OS_*`` variable of the caller and ``HOME`` in the test's tmp (so no
    user clouds.yaml or cache can leak in)."""

    env: dict[str, str]
    cloud: str = "strato"

    @classmethod
    def for_cloud(cls, clouds_yaml: Path, home: Path, cloud: str = "strato") -> Cli:
        assert OPENSTACK.exists(), (
            f"{OPENSTACK} is missing: install the test dependencies (python-openstackclient)")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STRATO_"))}
        env.update({"HOME": str(home), "OS_CLIENT_CONFIG_FILE": str(clouds_yaml),
                    "PYTHONWARNINGS": "ignore"})
        return cls(env=env, cloud=cloud)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(OPENSTACK), "--os-cloud", self.cloud, *args], env=self.env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command that must succeed; its output is in the failure message."""
        result = self.run(*args)
        assert result.returncode == 0, (
            f"openstack --os-cloud {self.cloud} {' '.join(args)} exited {result.returncode}:"
            f"\n{result.stderr[-4000:]}{result.stdout[-2000:]}")
        return result

    def fails(self, *args: str) -> str:
        """Run a command that must fail; what it printed on stderr."""
        result = self.run(*args)
        assert result.returncode != 0, (
            f"openstack --os-cloud {self.cloud} {' '.join(args)} succeeded:\n"
            f"{result.stdout[-2000:]}")
        return result.stderr

    def json(self, *args: str) -> Any:
        """Run a command with ``-f json`` and parse what it prints."""
        return json.loads(self.ok(*args, "-f", "json").stdout)


def make_qcow2(path: Path, virtual_size: int = 16 * MIB) -> bytes:
    """An empty qcow2 image of ``virtual_size`` bytes, written to ``path``: made by
    ``qemu-img`` when the machine has it, else built here (see :func:`build_qcow2`)."""
    if has_qemu_img():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path),
                        str(virtual_size)], check=True, timeout=30)
    else:
        path.write_bytes(build_qcow2(virtual_size))
    return path.read_bytes()


def build_qcow2(virtual_size: int, *, backing_file: str | None = None) -> bytes:
    """A valid, empty qcow2 version 3 image (``qemu-img check`` passes): 64 KiB clusters;
    cluster 0 the header (and the backing file's name, if any), 1 the refcount table, 2
    its one refcount block, 3 the L1 table (one entry per 512 MiB, all zero: nothing
    allocated)."""
    cluster = 65536
    l1_size = -(-virtual_size // (cluster * cluster // 8))
    backing = (backing_file or "").encode()
    header = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 512 if backing else 0,
                         len(backing), 16, virtual_size, 0, l1_size, 3 * cluster, cluster,
                         1, 0, 0, 0, 0, 0, 4, 104)
    header = header.ljust(512, b"\0") + backing  # extensions end at 104 (a zero type)
    refcount_table = struct.pack(">Q", 2 * cluster)
    refcount_block = struct.pack(">4H", 1, 1, 1, 1)  # 16-bit refcounts of clusters 0-3
    return b"".join(part.ljust(cluster, b"\0") for part in
                    (header, refcount_table, refcount_block, b""))


def has_qemu_img() -> bool:
    return shutil.which("qemu-img") is not None


def vm_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in bytes (from ``/proc/<pid>/status``)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields
