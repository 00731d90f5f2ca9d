"""The clouds.yaml that ``strato up`` writes into its data directory: the real
``openstack`` CLI, given only ``OS_CLIENT_CONFIG_FILE`` and ``OS_CLOUD``, logs in with the
admin's password through strato's Keystone API and finds every service in the catalog."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from strato.clouds import clouds_yaml
from strato.config import Settings
from tests.client.server_fixtures import (
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

OPENSTACK = Path(sys.executable).parent / "openstack"


def _openstack(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([str(OPENSTACK), *args, "-f", "json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"openstack {' '.join(args)}: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_the_two_variables_are_all_the_cli_needs(api: RunningApi,
                                                 tmp_path: Path) -> None:
    clouds = api.cluster.data_dir / "clouds.yaml"
    assert stat.S_IMODE(clouds.stat().st_mode) == 0o600  # it holds the admin password
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "STRATO_"))}
    env.update({"HOME": str(tmp_path), "OS_CLIENT_CONFIG_FILE": str(clouds),
                "OS_CLOUD": "strato", "PYTHONWARNINGS": "ignore"})
    catalog = {entry["Type"]: entry for entry in _openstack(env, "catalog", "list")}
    assert set(catalog) >= {"identity", "compute", "image", "network"}
    flavors = {f["Name"] for f in _openstack(env, "flavor", "list")}
    assert "m1.tiny" in flavors
    assert isinstance(_openstack(env, "server", "list"), list)


@pytest.mark.parametrize("password", ["plain", "with: colon # and hash", "quote \" ' \\n",
                                      "ünïcödé ☃", "- list\nnewline"])
def test_any_password_stays_one_string(tmp_path: Path, password: str) -> None:
    settings = Settings(data_dir=tmp_path, identity={"admin_password": password},
                        api={"listen": "127.0.0.1:9999"})
    cloud = yaml.safe_load(clouds_yaml(settings))["clouds"]["strato"]
    assert cloud["auth"]["password"] == password
    assert cloud["auth"]["auth_url"] == "http://127.0.0.1:9999/identity/v3"
