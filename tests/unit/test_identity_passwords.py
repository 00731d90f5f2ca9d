"""Argon2id password hashes."""

from __future__ import annotations

from strato.identity.passwords import Argon2Params, hash_password, verify_password

FAST = Argon2Params(memory_kib=1024, iterations=1, lanes=1)


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("s3cret", FAST)
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert not verify_password("", encoded)


def test_the_hash_carries_its_parameters_and_a_random_salt() -> None:
    first, second = hash_password("pw", FAST), hash_password("pw", FAST)
    assert first.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert first != second  # fresh salt each time
    assert verify_password("pw", first) and verify_password("pw", second)


def test_default_parameters_are_stored_and_used() -> None:
    encoded = hash_password("pw")
    assert "$m=19456,t=2,p=1$" in encoded
    assert verify_password("pw", encoded)


def test_missing_or_malformed_hashes_match_nothing() -> None:
    good = hash_password("pw", FAST)
    for bad in (None, "", "plain", "$argon2i$v=19$m=1,t=1,p=1$aa$bb", good[:-5] + "AAAAA",
                good.replace("m=1024", "m=x"), good.replace("$v=19$", "$v=16$")):
        assert not verify_password("pw", bad), bad
