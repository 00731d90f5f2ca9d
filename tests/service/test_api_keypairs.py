"""Key pairs through the Compute API (``/v2.1/os-keypairs``, microversion 2.1): generate
and import, list and show shapes, per-user isolation, delete, every refused body, the
``key_pairs`` quota, and ``key_name`` on server create (unknown: 400 and nothing made;
known: the build request carries the public key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from strato.domain.keypairs import fingerprint
from strato.domain.requests import BootRequest
from strato.rpc.bus import Target
from strato.rpc.contracts.compute import RebuildInstance
from strato.rpc.contracts.conductor import BuildInstances
from strato.rpc.messages import decode_body, encode_body
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.cloud_fixtures import fake_hosts, wait_until
from tests.fakes.lossy_bus import lossy_cloud

KEYPAIRS = "/v2.1/os-keypairs"


def public_key(comment: str = "me@host") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def assert_fault(response: httpx.Response, status: int, name: str, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == [name], body
    assert body[name] == {"code": status, "message": message}


async def create(api: Api, token: str = ALICE, **keypair: Any) -> httpx.Response:
    return await api.request("POST", KEYPAIRS, token=token, json={"keypair": keypair})


async def create_one(api: Api, token: str = ALICE, **keypair: Any) -> dict[str, Any]:
    response = await create(api, token, **keypair)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()["keypair"]
    return created


async def names(api: Api, token: str = ALICE) -> list[str]:
    response = await api.request("GET", KEYPAIRS, token=token)
    assert response.status_code == 200, response.text
    return [entry["keypair"]["name"] for entry in response.json()["keypairs"]]


# --- create -----------------------------------------------------------------------------

async def test_generate_returns_a_private_key_that_matches_once(api: Api) -> None:
    created = await create_one(api, name="gen")
    assert set(created) == {"name", "public_key", "fingerprint", "user_id", "private_key"}
    assert created["name"] == "gen" and created["user_id"] == "alice"
    private = serialization.load_pem_private_key(created["private_key"].encode(), None)
    public = serialization.load_ssh_public_key(created["public_key"].encode())
    assert public == private.public_key()
    assert created["fingerprint"] == fingerprint(created["public_key"])
    shown = (await api.request("GET", f"{KEYPAIRS}/gen")).json()["keypair"]
    assert "private_key" not in shown
    assert shown["public_key"] == created["public_key"]


async def test_import_stores_the_given_key(api: Api) -> None:
    key = public_key()
    created = await create_one(api, name="imported", public_key=key)
    assert created == {"name": "imported", "public_key": key, "user_id": "alice",
                       "fingerprint": fingerprint(key)}


@pytest.mark.parametrize("key", ["", "not a key", "ssh-rsa AAAA", "ssh-ed25519 !!!"])
async def test_an_invalid_public_key_is_a_400(api: Api, key: str) -> None:
    assert_fault(await create(api, name="bad", public_key=key), 400, "badRequest",
                 "Keypair data is invalid: failed to generate fingerprint")
    assert await names(api) == []


@pytest.mark.parametrize("name", ["a/b", "key!", "k\u00e9y"])
async def test_an_unsafe_name_is_a_400(api: Api, name: str) -> None:
    assert_fault(await create(api, name=name), 400, "badRequest",
                 "Keypair data is invalid: Keypair name contains unsafe characters")


@pytest.mark.parametrize("keypair", [{}, {"name": ""}, {"name": "x" * 256}, {"name": " x"},
                                     {"name": 1}, {"name": "k", "public_key": None},
                                     {"name": "k", "type": "ssh"},
                                     {"name": "k", "user_id": "bob"}])
async def test_a_body_outside_novas_2_1_schema_is_a_400(api: Api,
                                                       keypair: dict[str, Any]) -> None:
    response = await api.request("POST", KEYPAIRS, json={"keypair": keypair})
    assert response.status_code == 400, response.text
    assert await names(api) == []


async def test_a_body_without_keypair_is_a_400(api: Api) -> None:
    response = await api.request("POST", KEYPAIRS, json={"name": "k"})
    assert response.status_code == 400, response.text


async def test_names_with_dots_at_and_spaces_are_allowed(api: Api) -> None:
    await create_one(api, name="me@host.example", public_key=public_key())
    await create_one(api, name="my key_1-2", public_key=public_key())
    shown = await api.request("GET", f"{KEYPAIRS}/my key_1-2")
    assert shown.status_code == 200, shown.text


async def test_a_duplicate_name_is_a_409(api: Api) -> None:
    await create_one(api, name="dup", public_key=public_key())
    assert_fault(await create(api, name="dup"), 409, "conflictingRequest",
                 "Key pair 'dup' already exists.")
    # Names are per user: Bob may use the same one.
    await create_one(api, BOB, name="dup", public_key=public_key())


# --- list, show, delete -----------------------------------------------------------------

async def test_list_uses_novas_nesting_oldest_first(api: Api) -> None:
    keys = [public_key(), public_key()]
    await create_one(api, name="one", public_key=keys[0])
    await create_one(api, name="two", public_key=keys[1])
    response = await api.request("GET", KEYPAIRS)
    assert response.status_code == 200
    assert response.json() == {"keypairs": [
        {"keypair": {"name": n, "public_key": k, "fingerprint": fingerprint(k)}}
        for n, k in zip(["one", "two"], keys, strict=True)]}


async def test_show_has_the_record_fields(api: Api) -> None:
    key = public_key()
    await create_one(api, name="k", public_key=key)
    response = await api.request("GET", f"{KEYPAIRS}/k")
    assert response.status_code == 200, response.text
    shown = response.json()["keypair"]
    assert set(shown) == {"name", "public_key", "fingerprint", "user_id", "id", "created_at",
                          "deleted", "deleted_at", "updated_at"}
    assert shown["user_id"] == "alice" and isinstance(shown["id"], int)
    assert shown["deleted"] is False and shown["deleted_at"] is None
    assert shown["updated_at"] is None
    assert len(shown["created_at"]) == len("2024-01-02T03:04:05.123456")
    assert shown["fingerprint"] == fingerprint(key)


async def test_another_users_keys_are_invisible(api: Api) -> None:
    await create_one(api, name="mine", public_key=public_key())
    assert await names(api, BOB) == []
    assert await names(api, ADMIN) == []
    bob_id = (await create_one(api, BOB, name="bobs", public_key=public_key()))["user_id"]
    assert_fault(await api.request("GET", f"{KEYPAIRS}/mine", token=BOB), 404, "itemNotFound",
                 f"Keypair mine not found for user {bob_id}")
    assert_fault(await api.request("DELETE", f"{KEYPAIRS}/mine", token=BOB), 404,
                 "itemNotFound", f"Keypair mine not found for user {bob_id}")
    assert await names(api) == ["mine"]


async def test_delete_is_202_then_404(api: Api) -> None:
    await create_one(api, name="gone", public_key=public_key())
    response = await api.request("DELETE", f"{KEYPAIRS}/gone")
    assert response.status_code == 202, response.text
    assert response.content == b""
    assert await names(api) == []
    assert_fault(await api.request("GET", f"{KEYPAIRS}/gone"), 404, "itemNotFound",
                 "Keypair gone not found for user alice")
    assert_fault(await api.request("DELETE", f"{KEYPAIRS}/gone"), 404, "itemNotFound",
                 "Keypair gone not found for user alice")


async def test_anonymous_callers_are_refused(api: Api) -> None:
    response = await api.request("GET", KEYPAIRS, token=None)
    assert response.status_code == 401


# --- quota ------------------------------------------------------------------------------

async def test_the_key_pairs_quota_is_enforced_per_user(api: Api) -> None:
    response = await api.request("PUT", "/v2.1/os-quota-sets/project-a", token=ADMIN,
                                 json={"quota_set": {"key_pairs": 1}})
    assert response.status_code == 200, response.text
    await create_one(api, name="first", public_key=public_key())
    assert_fault(await create(api, name="second", public_key=public_key()), 403, "forbidden",
                 "Quota exceeded, too many key pairs.")
    assert_fault(await create(api, name="third"), 403, "forbidden",
                 "Quota exceeded, too many key pairs.")
    assert await names(api) == ["first"]
    await api.request("DELETE", f"{KEYPAIRS}/first")
    await create_one(api, name="second", public_key=public_key())


# --- server create with key_name ----------------------------------------------------------

async def test_an_unknown_key_name_is_a_400_and_creates_nothing(api: Api) -> None:
    assert_fault(await api.create_server(key_name="nope"), 400, "badRequest",
                 "Invalid key_name provided.")
    # Another user's key pair is unknown too.
    await create_one(api, BOB, name="bobs", public_key=public_key())
    assert_fault(await api.create_server(key_name="bobs"), 400, "badRequest",
                 "Invalid key_name provided.")
    assert await api.instances() == []
    assert api.bus.casts == []


async def test_a_known_key_name_reaches_the_build_request(api: Api) -> None:
    key = public_key()
    await create_one(api, name="mykey", public_key=key)
    response = await api.create_server(key_name="mykey")
    assert response.status_code == 202, response.text
    [instance] = await api.instances()
    assert instance.key_name == "mykey"
    [cast] = api.bus.casts
    assert isinstance(cast.message, BuildInstances)
    [request] = cast.message.requests
    assert (request.key_name, request.key_data) == ("mykey", key)
    # The key survives the bus's encoding on the way to the conductor and the host.
    assert decode_body(BootRequest, encode_body(request)).key_data == key
    server = (await api.request("GET", f"/v2.1/servers/{instance.id}")).json()["server"]
    assert server["key_name"] == "mykey"


async def test_a_server_without_key_name_has_no_key_data(api: Api) -> None:
    response = await api.create_server()
    assert response.status_code == 202, response.text
    [cast] = api.bus.casts
    assert isinstance(cast.message, BuildInstances)
    assert cast.message.requests[0].key_data is None


async def test_a_rebuild_carries_the_key_pair_and_drops_a_deleted_one(tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(1)) as (h, bus):
        rebuilds: list[RebuildInstance] = []

        def watch(target: Target, message: object) -> bool:
            del target
            if isinstance(message, RebuildInstance):
                rebuilds.append(message)
            return False

        bus.drop(watch)
        key = public_key()
        await h.client.request("POST", "/v2.1/os-keypairs", json={
            "keypair": {"name": "k", "public_key": key}})
        server_id = await h.client.create_server("keyed", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"], key_name="k")
        await h.client.wait_for_status(server_id, {"ACTIVE"})

        async def rebuild() -> None:
            await h.client.request("POST", f"/v2.1/servers/{server_id}/action",
                                   json={"rebuild": {"imageRef": h.image_id}})
            await h.client.wait_for_status(server_id, {"ACTIVE"})

            async def idle() -> bool:
                return (await h.client.get_server(server_id)).task_state is None
            await wait_until(idle)

        await rebuild()
        await h.client.request("DELETE", "/v2.1/os-keypairs/k")
        await rebuild()
        assert [(r.request.key_name, r.request.key_data) for r in rebuilds] == [
            ("k", key), ("k", None)]
