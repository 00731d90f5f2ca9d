"""Key pairs in the domain: Nova's name rules and fingerprint, generated keys that load
back with ``cryptography``, and the public key's way from a create request through the
:class:`BootRequest` into the config drive's meta_data.json."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from strato.domain.errors import Invalid
from strato.domain.keypairs import check_name, fingerprint, generate_key_pair
from strato.virt.configdrive import InstanceMetadata, metadata_tree

UUID = "0b9e5c3a-6a43-4a8c-9f7e-2c1d3e4f5a6b"


def ed25519_public_key(comment: str = "me@host") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def nova_fingerprint(public_key: str) -> str:
    """Nova's ``generate_fingerprint``, spelled out: MD5 of the blob, colon hex."""
    raw = hashlib.md5(base64.b64decode(public_key.split(" ")[1])).hexdigest()
    return ":".join(a + b for a, b in zip(raw[::2], raw[1::2], strict=True))


def test_fingerprint_is_novas_md5_of_the_key_blob() -> None:
    key = ed25519_public_key()
    assert fingerprint(key) == nova_fingerprint(key)
    assert len(fingerprint(key).split(":")) == 16


@pytest.mark.parametrize("bad", ["", "ssh-rsa", "ssh-rsa notbase64!", "hello world",
                                 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== x", "\udcff"])
def test_an_unparsable_public_key_is_invalid(bad: str) -> None:
    with pytest.raises(Invalid, match=r"^Keypair data is invalid: failed to generate "
                                      r"fingerprint$"):
        fingerprint(bad)


def test_a_generated_key_pair_loads_back_and_matches() -> None:
    generated = generate_key_pair()
    assert generated.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(generated.private_key.encode(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    public = serialization.load_ssh_public_key(generated.public_key.encode())
    assert public == private.public_key()
    assert generated.public_key.startswith("ssh-rsa ")
    assert generated.fingerprint == nova_fingerprint(generated.public_key)


@pytest.mark.parametrize("name", ["k", "my key_1-2", "me@host.example", "x" * 255])
def test_allowed_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["a/b", "key!", "tab\tkey", "ключ", "a:b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(Invalid, match="^Keypair data is invalid: Keypair name contains "
                                      "unsafe characters$"):
        check_name(name)


@pytest.mark.parametrize("name", ["", "x" * 256])
def test_names_must_have_1_to_255_characters(name: str) -> None:
    with pytest.raises(Invalid, match="between 1 and 255 characters long"):
        check_name(name)


def test_config_drive_meta_data_carries_the_key_as_nova_writes_it() -> None:
    key = ed25519_public_key()
    md = InstanceMetadata(uuid=UUID, name="web", hostname="web", project_id="p",
                          public_keys={"mykey": key})
    for version in ("2018-08-27", "latest"):
        data = json.loads(metadata_tree(md)[f"openstack/{version}/meta_data.json"])
        assert data["public_keys"] == {"mykey": key}
        assert data["keys"] == [{"name": "mykey", "type": "ssh", "data": key}]


def test_config_drive_without_a_key_has_empty_key_fields() -> None:
    md = InstanceMetadata(uuid=UUID, name="web", hostname="web", project_id="p")
    data = json.loads(metadata_tree(md)["openstack/latest/meta_data.json"])
    assert data["public_keys"] == {} and data["keys"] == []
