"""Hostnames from server names: Nova's sanitising rules, multi-create suffixes, and a
property test that every result is a valid DNS label."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strato.domain.errors import Invalid
from strato.domain.hostnames import hostname_for, sanitize_hostname

VALID = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
UUID = "0b9e5c3a-6a43-4a8c-9f7e-2c1d3e4f5a6b"


@pytest.mark.parametrize(("name", "expected"), [
    ("web", "web"),
    ("Web01", "web01"),
    ("My Web Server", "my-web-server"),
    ("db_primary", "db-primary"),
    ("web.example.com", "web.example.com"),
    ("Ünïcode", "unicode"),
    ("café crème", "cafe-creme"),
    ("hello!@#$%^&*()world", "helloworld"),
    ("--edge--", "edge"),
    ("..dots..", "dots"),
    ("-._ mixed _.-", "mixed"),
    ("a" * 100, "a" * 63),
    ("a" * 62 + "-b", "a" * 62),
    ("a" * 61 + ".-b", "a" * 61),
    ("ＡＢＣ", "abc"),
    ("tab\there", "tabhere"),
])
def test_sanitize_table(name: str, expected: str) -> None:
    assert sanitize_hostname(name) == expected


@pytest.mark.parametrize(("name", "default", "expected"), [
    ("", None, "server"),
    ("!!!", None, "server"),
    ("日本語", None, "server"),
    ("日本語", "Fallback Name", "fallback-name"),
    ("---", "___", "server"),
    ("ok", "ignored", "ok"),
])
def test_sanitize_defaults(name: str, default: str | None, expected: str) -> None:
    assert sanitize_hostname(name, default) == expected


@pytest.mark.parametrize(("name", "index", "multiple", "expected"), [
    ("web", 0, False, "web"),
    ("web", 0, True, "web-1"),
    ("web", 4, True, "web-5"),
    ("My Server", 1, True, "my-server-2"),
    ("", 0, False, f"server-{UUID}"),
    ("!!!", 2, True, f"server-{UUID}"),
    ("a" * 70, 9, True, "a" * 60 + "-10"),
    ("a" * 61 + "-bcd", 0, True, "a" * 61 + "-1"),
])
def test_hostname_for(name: str, index: int, multiple: bool, expected: str) -> None:
    assert hostname_for(name, UUID, index, multiple) == expected


def test_hostname_for_rejects_negative_index() -> None:
    with pytest.raises(Invalid, match="launch index"):
        hostname_for("web", UUID, -1, True)


def test_multi_create_hostnames_are_distinct_even_when_truncated() -> None:
    names = {hostname_for("x" * 200, UUID, i, True) for i in range(100)}
    assert len(names) == 100


@given(st.text(), st.one_of(st.none(), st.text()))
def test_sanitize_always_gives_a_valid_label(name: str, default: str | None) -> None:
    result = sanitize_hostname(name, default)
    assert VALID.match(result), result
    assert sanitize_hostname(result) == result


@given(st.text(), st.text(), st.integers(min_value=0, max_value=10_000), st.booleans())
def test_hostname_for_always_gives_a_valid_label(name: str, instance_id: str, index: int,
                                                 multiple: bool) -> None:
    assert VALID.match(hostname_for(name, instance_id, index, multiple))
