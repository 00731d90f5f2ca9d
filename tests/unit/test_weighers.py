"""The scheduler's weighers: exact totals of :func:`weigh` (each weigher normalised to
0..1 across the hosts, times its multiplier, summed), spreading and stacking, the
build-failure weigher, and the soft group policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from strato.domain.groups import GroupPolicy
from strato.domain.ids import GroupId, HostName, NodeName
from strato.domain.resources import NodeCapacity, Resources
from strato.scheduler.filters import resolve_filters
from strato.scheduler.select import rank
from strato.scheduler.state import GroupPlacement, HostState, RequestSpec
from strato.scheduler.weighers import DEFAULT_MULTIPLIERS, WEIGHERS, weigh

NEED = Resources(vcpus=1, memory_mb=256, disk_gb=1)
PLAIN = RequestSpec(need=NEED)
SOFT = {"ServerGroupSoftAffinityWeigher": 1.0, "ServerGroupSoftAntiAffinityWeigher": 1.0}


def host(name: str, *, mem: int = 4096, used_mem: int = 0, disk: int = 100,
         used_disk: int = 0, vcpus: int = 4, used_vcpus: int = 0,
         failed_builds: int = 0) -> HostState:
    cap = NodeCapacity(host=HostName(name), node=NodeName(name),
                       total=Resources(vcpus=vcpus, memory_mb=mem, disk_gb=disk),
                       cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                       disk_allocation_ratio=1.0)
    return HostState(capacity=cap,
                     used=Resources(vcpus=used_vcpus, memory_mb=used_mem, disk_gb=used_disk),
                     failed_builds=failed_builds)


def grouped(policy: GroupPolicy, hosts: dict[str, int]) -> RequestSpec:
    return RequestSpec(need=NEED, group=GroupPlacement(
        id=GroupId("g"), policy=policy, hosts={HostName(h): n for h, n in hosts.items()}))


def order(hosts: Sequence[HostState], spec: RequestSpec,
          multipliers: Mapping[str, float]) -> list[str]:
    ranking = rank(hosts, spec, resolve_filters([]), multipliers)
    return [h.host for h in ranking.candidates]


def test_every_weigher_has_a_default_multiplier() -> None:
    assert [w.name for w in WEIGHERS] == list(DEFAULT_MULTIPLIERS)
    assert DEFAULT_MULTIPLIERS["BuildFailureWeigher"] == 1_000_000.0


# -- RAM: spread and stack -------------------------------------------------------------

def test_ram_weigher_spreads_most_free_first() -> None:
    # Free, not total: c has the most RAM but only 2000 MB of it free.
    hosts = [host("a", mem=1000), host("b", mem=4000), host("c", mem=8000, used_mem=6000)]
    assert weigh(hosts, PLAIN, {"RAMWeigher": 1.0}) == pytest.approx([0.0, 1.0, 1 / 3])
    assert order(hosts, PLAIN, {"RAMWeigher": 1.0}) == ["b", "c", "a"]


def test_a_negative_ram_multiplier_stacks_least_free_first() -> None:
    hosts = [host("a", mem=1000), host("b", mem=4000), host("c", mem=8000, used_mem=6000)]
    assert weigh(hosts, PLAIN, {"RAMWeigher": -2.0}) == pytest.approx([0.0, -2.0, -2 / 3])
    assert order(hosts, PLAIN, {"RAMWeigher": -2.0}) == ["a", "c", "b"]


def test_a_zero_or_missing_multiplier_disables_the_weigher() -> None:
    hosts = [host("c", mem=1000), host("b", mem=4000), host("a", mem=2000)]
    for multipliers in ({"RAMWeigher": 0.0}, {}, {"DiskWeigher": 0.0}):
        assert weigh(hosts, PLAIN, multipliers) == [0.0, 0.0, 0.0]
        assert order(hosts, PLAIN, multipliers) == ["a", "b", "c"]  # by name only


def test_disk_and_cpu_weighers_use_free_amounts() -> None:
    hosts = [host("a", disk=100, used_disk=90), host("b", disk=50), host("c", disk=20)]
    assert weigh(hosts, PLAIN, {"DiskWeigher": 1.0}) == pytest.approx([0.0, 1.0, 0.25])
    hosts = [host("a", vcpus=8, used_vcpus=7), host("b", vcpus=3), host("c", vcpus=2)]
    assert weigh(hosts, PLAIN, {"CPUWeigher": 4.0}) == pytest.approx([0.0, 4.0, 2.0])


# -- normalisation ---------------------------------------------------------------------

def test_a_weigher_on_which_all_hosts_are_equal_adds_nothing() -> None:
    # Same RAM everywhere: the large RAM multiplier must not shift anything.
    hosts = [host("a", disk=10), host("b", disk=30), host("c", disk=20)]
    assert weigh(hosts, PLAIN, {"RAMWeigher": 50.0, "DiskWeigher": 1.0}) == \
        pytest.approx([0.0, 1.0, 0.5])
    assert weigh([host("only")], PLAIN, DEFAULT_MULTIPLIERS) == [0.0]
    assert weigh([], PLAIN, DEFAULT_MULTIPLIERS) == []


def test_two_weighers_combine_as_multiplier_times_normalised_value() -> None:
    # RAM free 1000/3000/2000: normalised 0, 1, 0.5 (times 2).
    # vCPUs free 4/2/1: normalised 1, 1/3, 0 (times 0.5).
    hosts = [host("a", mem=1000, vcpus=4), host("b", mem=3000, vcpus=2),
             host("c", mem=2000, vcpus=1)]
    totals = weigh(hosts, PLAIN, {"RAMWeigher": 2.0, "CPUWeigher": 0.5})
    assert totals == pytest.approx([0.5, 2.0 + 0.5 / 3, 1.0])
    assert order(hosts, PLAIN, {"RAMWeigher": 2.0, "CPUWeigher": 0.5}) == ["b", "c", "a"]
    # A larger CPU multiplier turns the order around.
    assert order(hosts, PLAIN, {"RAMWeigher": 2.0, "CPUWeigher": 5.0}) == ["a", "b", "c"]


def test_normalisation_ignores_absolute_scale() -> None:
    small = [host("a", mem=1000), host("b", mem=2000), host("c", mem=1500)]
    large = [host("a", mem=100_000), host("b", mem=200_000), host("c", mem=150_000)]
    assert weigh(small, PLAIN, {"RAMWeigher": 1.0}) == pytest.approx([0.0, 1.0, 0.5])
    assert weigh(large, PLAIN, {"RAMWeigher": 1.0}) == pytest.approx([0.0, 1.0, 0.5])


# -- build failures --------------------------------------------------------------------

def test_build_failures_put_a_host_last_even_with_the_most_free_ram() -> None:
    hosts = [host("big", mem=16384, failed_builds=1), host("small", mem=2048),
             host("mid", mem=4096)]
    totals = weigh(hosts, PLAIN, DEFAULT_MULTIPLIERS)
    assert totals == pytest.approx([1.0, 1_000_000.0, 1_000_000.0 + 2048 / 14336])
    assert order(hosts, PLAIN, DEFAULT_MULTIPLIERS) == ["mid", "small", "big"]


def test_more_build_failures_weigh_less() -> None:
    hosts = [host("a", failed_builds=2), host("b", failed_builds=1), host("c")]
    assert weigh(hosts, PLAIN, {"BuildFailureWeigher": 10.0}) == \
        pytest.approx([0.0, 5.0, 10.0])
    assert order(hosts, PLAIN, DEFAULT_MULTIPLIERS) == ["c", "b", "a"]


# -- soft group policies ---------------------------------------------------------------

def test_soft_affinity_prefers_hosts_with_members() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    spec = grouped(GroupPolicy.SOFT_AFFINITY, {"h2": 2, "h3": 1, "elsewhere": 4})
    assert weigh(hosts, spec, SOFT) == pytest.approx([0.0, 1.0, 0.5])
    # Stronger than free RAM when its multiplier says so.
    roomy = [host("h1", mem=16384), host("h2", mem=2048), host("h3")]
    multipliers = {"RAMWeigher": 1.0, "ServerGroupSoftAffinityWeigher": 10.0}
    assert order(roomy, spec, multipliers) == ["h2", "h3", "h1"]


def test_soft_anti_affinity_prefers_hosts_without_members() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    spec = grouped(GroupPolicy.SOFT_ANTI_AFFINITY, {"h2": 2, "h3": 1})
    assert weigh(hosts, spec, SOFT) == pytest.approx([1.0, 0.0, 0.5])
    assert order(hosts, spec, SOFT) == ["h1", "h3", "h2"]


@pytest.mark.parametrize("policy", [None, GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY])
def test_soft_weighers_need_a_soft_group(policy: GroupPolicy | None) -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    spec = PLAIN if policy is None else grouped(policy, {"h2": 2, "h3": 1})
    assert weigh(hosts, spec, SOFT) == [0.0, 0.0, 0.0]
