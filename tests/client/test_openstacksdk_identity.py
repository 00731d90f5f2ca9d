"""openstacksdk authenticates with a password against strato's Identity API (Keystone v3)
and uses the catalog it returns (``strato up`` as an OS process)."""

from __future__ import annotations

import openstack
import pytest
from openstack.connection import Connection

from tests.client.server_fixtures import (
    Account,
    RunningApi,
    add_member,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


def connect(api: RunningApi, account: Account | None = None, *,
            password: str | None = None) -> Connection:
    """Password auth as ``account`` (default: the admin), with ``password`` instead of
    the account's when given; no clouds.yaml, no ``OS_*`` variables."""
    auth = (account or api.admin).auth(api.url)
    if password is not None:
        auth["password"] = password
    connection: Connection = openstack.connect(
        auth_type="password", auth=auth, region_name="RegionOne", load_yaml_config=False,
        load_envvars=False)
    return connection


def test_password_login_and_the_catalog(api: RunningApi) -> None:
    with connect(api) as conn:
        assert (conn.auth_token or "").startswith("gAAAAA")
        assert conn.current_project.name == "admin"
        for service, path in (("compute", "/v2.1"), ("image", "/image"),
                              ("network", "/networking")):
            proxy = getattr(conn, service)
            assert proxy.get_endpoint().rstrip("/").startswith(api.url + path), service
        assert "m1.tiny" in {f.name for f in conn.compute.flavors()}
        assert isinstance(list(conn.image.images()), list)


def test_a_member_logs_in_to_their_own_project(api: RunningApi) -> None:
    member = add_member(api, "sdk-project", "sdk-user", "sdk user's password")
    with connect(api, member) as conn, connect(api) as admin:
        assert conn.current_project.name == "sdk-project"
        assert conn.current_user_id != admin.current_user_id
        assert list(conn.compute.servers()) == []
    # Not into a project they hold no role on.
    with pytest.raises(openstack.exceptions.SDKException, match=r"HTTP 401"):
        connect(api, Account(member.username, member.password, "admin")).authorize()


def test_a_wrong_password_is_refused(api: RunningApi) -> None:
    with pytest.raises(openstack.exceptions.SDKException, match=r"HTTP 401"):
        connect(api, password="wrong").authorize()
