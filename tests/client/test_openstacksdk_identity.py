"""openstacksdk authenticates with a password against strato's Identity API (Keystone v3)
and uses the catalog it returns (``strato up`` as an OS process)."""

from __future__ import annotations

import openstack
import pytest
from openstack.connection import Connection

from tests.client.server_fixtures import (
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


def connect(api: RunningApi, password: str = "strato-admin") -> Connection:
    connection: Connection = openstack.connect(
        auth_type="password", auth={
            "auth_url": f"{api.url}/identity/v3", "username": "admin", "password": password,
            "project_name": "admin", "user_domain_name": "Default",
            "project_domain_id": "default"},
        region_name="RegionOne", load_yaml_config=False, load_envvars=False)
    return connection


def test_password_login_and_the_catalog(api: RunningApi) -> None:
    conn = connect(api)
    assert conn.auth_token.startswith("gAAAAA")
    assert conn.current_project.name == "admin"
    assert conn.compute.get_endpoint().rstrip("/") == f"{api.url}/v2.1"
    flavors = {f.name for f in conn.compute.flavors()}
    assert "m1.tiny" in flavors or flavors == set()
    assert isinstance(list(conn.image.images()), list)


def test_a_wrong_password_is_refused(api: RunningApi) -> None:
    with pytest.raises(openstack.exceptions.SDKException, match=r"HTTP 401"):
        connect(api, password="wrong").authorize()
