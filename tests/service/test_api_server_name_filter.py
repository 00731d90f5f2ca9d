"""``GET /servers?name=``: a regular expression, as in Nova, but a bounded one. Patterns
outside the safe subset (nested or alternated repeats, backreferences, look-arounds,
more than 255 characters, too many repeats) are a 400 before any row is matched; the
patterns Nova's users write keep working."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api_fixtures import (
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_servers import create_one

NAMES = ("web-1", "web-22", "vm1", "db-a", "a" * 255)


async def names(api: Api, pattern: str) -> list[str]:
    response = await api.request("GET", f"/v2.1/servers?name={quote(pattern)}")
    assert response.status_code == 200, response.text
    return sorted(s["name"] for s in response.json()["servers"])


async def refused(api: Api, pattern: str) -> str:
    response = await api.request("GET", f"/v2.1/servers/detail?name={quote(pattern)}")
    assert response.status_code == 400, (pattern, response.text)
    message: str = response.json()["badRequest"]["message"]
    return message


@pytest.fixture
async def servers(api: Api) -> Api:
    for name in NAMES:
        await create_one(api, name=name)
    return api


@pytest.mark.parametrize(("pattern", "expected"), [
    ("^vm", ["vm1"]),
    ("web-[0-9]+", ["web-1", "web-22"]),
    ("^web-\\d{1,2}$", ["web-1", "web-22"]),
    ("^(web|db)-", ["db-a", "web-1", "web-22"]),
    ("(?:^vm|-a$)", ["db-a", "vm1"]),
    ("eb", ["web-1", "web-22"]),  # a search, not a match
    ("^a+$", ["a" * 255]),
    ("^[^-]+$", ["a" * 255, "vm1"]),
    ("web\\-2.*", ["web-22"]),
    ("^.*2$", ["web-22"]),
    ("[.]", []),
])
async def test_nova_style_patterns_still_filter(servers: Api, pattern: str,
                                                expected: list[str]) -> None:
    assert await names(servers, pattern) == expected


@pytest.mark.parametrize("pattern", [
    "(" * 5000,                 # was a 500 (RecursionError in re)
    "(",
    "[a-",
    "a{2,1}",
    "*a",
    "x" * 256,                  # longer than any name
])
async def test_a_broken_pattern_is_a_400(servers: Api, pattern: str) -> None:
    assert "name" in await refused(servers, pattern)


@pytest.mark.parametrize("pattern", [
    "(a+)+$",                   # nested repeats: exponential backtracking
    "(a+)+b",
    "(a*)*b",
    "(a|a)*$",                  # a repeated alternation: exponential too
    "(a|aa)+b",
    "(.*a){20}",
    "[a-z]*[a-z]*[a-z]*[a-z]*x",  # polynomial: n**5 on a 255-character name
    "a?" * 30 + "a" * 30,       # 2**30 ways
    "(a)\\1",                   # a backreference
    "(?=a)a",                   # look-arounds
    "(?<!b)a",
    "(?P<n>web)",               # Python-only syntax PostgreSQL's ~ refuses (2201B)
    "(?i)web",
    "\\bweb",                   # \b means a backspace to PostgreSQL
    "a{1,1000}",                # more than PostgreSQL's 255 repeats
])
async def test_a_costly_or_unportable_pattern_is_a_400(servers: Api, pattern: str) -> None:
    assert "name" in await refused(servers, pattern)
