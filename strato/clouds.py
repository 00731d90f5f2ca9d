"""The client configuration strato hands its user: a ``clouds.yaml`` with one cloud,
``strato``, that logs the bootstrap admin in with Keystone password auth, so that
``openstack`` and openstacksdk work with two environment variables and nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path

from strato.config import Settings

__all__ = ["CLOUD_NAME", "client_environment", "clouds_yaml", "write_clouds_yaml"]

CLOUD_NAME = "strato"


def clouds_yaml(settings: Settings) -> str:
    """The file's text. YAML is a superset of JSON, so the values go through ``json``:
    a password with any character in it stays one quoted string."""
    cloud = {
        "auth": {"auth_url": f"{settings.api.url}/identity/v3",
                 "username": "admin", "password": settings.identity.admin_password or "",
                 "project_name": "admin", "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "auth_type": "password",
        "identity_api_version": 3,
        "region_name": "RegionOne",
        "interface": "public",
    }
    return f"# written by strato\nclouds:\n  {CLOUD_NAME}: {json.dumps(cloud)}\n"


def write_clouds_yaml(settings: Settings) -> Path:
    """``<data_dir>/clouds.yaml`` (mode 0600: it holds the admin password)."""
    path = settings.data_dir / "clouds.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask, and a stale draft's mode
    with os.fdopen(fd, "w") as out:
        out.write(clouds_yaml(settings))
    part.replace(path)
    return path


def client_environment(path: Path) -> str:
    """The two lines that make ``openstack`` use ``path``."""
    return f"export OS_CLIENT_CONFIG_FILE={path}\nexport OS_CLOUD={CLOUD_NAME}"
