"""The scheduler's filters, ranking, choice and "no valid host" explanation (pure):
each filter's pass and fail with its exact reason, the cuts before the policy filters,
forced hosts and nodes, filters that do not apply, ``top``, ties, ``host_subset_size``
and alternates, and the refusal messages for users (no host names) and operators."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from strato.domain.aggregates import DEFAULT_ZONE
from strato.domain.groups import GroupPolicy
from strato.domain.ids import GroupId, HostName, NodeName
from strato.domain.requests import SchedulerHints
from strato.domain.resources import NodeCapacity, Resources
from strato.scheduler.filters import (
    CUTS,
    DEFAULT_FILTERS,
    POLICY_FILTERS,
    HostFilter,
    core_filter,
    disk_filter,
    ram_filter,
    resolve_filters,
    retry_filter,
)
from strato.scheduler.select import Ranking, choose, explain, rank
from strato.scheduler.state import GroupPlacement, HostState, RequestSpec
from strato.scheduler.weighers import DEFAULT_MULTIPLIERS

NEED = Resources(vcpus=1, memory_mb=1024, disk_gb=10)
FILTERS = resolve_filters(DEFAULT_FILTERS)
CUT_NAMES = ["RetryFilter", "RamFilter", "DiskFilter", "CoreFilter"]
NOTHING = Resources()


def host(name: str, *, node: str | None = None, mem: int = 4096, used_mem: int = 0,
         disk: int = 100, used_disk: int = 0, vcpus: int = 4, used_vcpus: int = 0,
         ram_ratio: float = 1.0, disk_ratio: float = 1.0, cpu_ratio: float = 1.0,
         reserved: Resources = NOTHING, up: bool = True, disabled: bool = False,
         reason: str | None = None, zone: str = DEFAULT_ZONE,
         failed_builds: int = 0) -> HostState:
    cap = NodeCapacity(host=HostName(name), node=NodeName(node or f"{name}-n"),
                       total=Resources(vcpus=vcpus, memory_mb=mem, disk_gb=disk),
                       cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=ram_ratio,
                       disk_allocation_ratio=disk_ratio, reserved=reserved)
    return HostState(capacity=cap,
                     used=Resources(vcpus=used_vcpus, memory_mb=used_mem, disk_gb=used_disk),
                     service_up=up, service_disabled=disabled, disabled_reason=reason,
                     availability_zone=zone, failed_builds=failed_builds)


def spec(*, need: Resources = NEED, zone: str | None = None, force_host: str | None = None,
         force_node: str | None = None, exclude: Sequence[str] = (),
         group: GroupPlacement | None = None) -> RequestSpec:
    hints = SchedulerHints(availability_zone=zone,
                           force_host=HostName(force_host) if force_host else None,
                           force_node=NodeName(force_node) if force_node else None)
    return RequestSpec(need=need, hints=hints, group=group,
                       exclude_hosts=frozenset(HostName(h) for h in exclude))


def group(policy: GroupPolicy, hosts: dict[str, int], *,
          max_per_host: int = 1) -> GroupPlacement:
    return GroupPlacement(id=GroupId("g1"), policy=policy, max_server_per_host=max_per_host,
                          hosts={HostName(h): n for h, n in hosts.items()})


def run(hosts: Sequence[HostState], request: RequestSpec,
        filters: Sequence[HostFilter] = FILTERS, *, top: int | None = None) -> Ranking:
    return rank(hosts, request, filters, DEFAULT_MULTIPLIERS, top=top)


def verdicts(ranking: Ranking) -> dict[str, tuple[str, str]]:
    """Each removed host: (filter, reason)."""
    return {r.host.host: (name, r.reason)
            for name, removed in ranking.rejected.items() for r in removed}


def passed(ranking: Ranking) -> list[str]:
    return [h.host for h in ranking.candidates]


def filter_names(ranking: Ranking) -> list[str]:
    return [f.name for f in ranking.filters]


# -- the cuts: RetryFilter, RamFilter, DiskFilter, CoreFilter --------------------------

def test_retry_filter_removes_hosts_a_build_already_failed_on() -> None:
    ranking = run([host("h1"), host("h2"), host("h3")], spec(exclude=["h1", "h3"]))
    assert passed(ranking) == ["h2"]
    assert verdicts(ranking) == {
        "h1": ("RetryFilter", "a build of this instance already failed here"),
        "h3": ("RetryFilter", "a build of this instance already failed here")}


def test_ram_filter_applies_the_ratio_and_the_reserved_amount() -> None:
    # limit = floor(3001 * 1.5) - 500 = 4001 (4501.5 rounds down); 1000 used: 3001 free.
    def node(name: str) -> HostState:
        return host(name, mem=3001, ram_ratio=1.5, reserved=Resources(memory_mb=500),
                    used_mem=1000)
    assert node("x").free.memory_mb == 3001
    fits = run([node("h1")], spec(need=Resources(memory_mb=3001)))
    assert passed(fits) == ["h1"] and fits.rejected == {}
    assert ram_filter(node("h1"), spec(need=Resources(memory_mb=3001))) is None
    full = run([node("h1")], spec(need=Resources(memory_mb=3002)))
    assert passed(full) == []
    assert verdicts(full) == {"h1": ("RamFilter", "free RAM 3001 MB < 3002 MB requested")}


def test_disk_filter_applies_the_ratio_and_the_reserved_amount() -> None:
    # limit = floor(11 * 1.25) - 2 = 11 (13.75 rounds down); 3 used: 8 free.
    def node(name: str) -> HostState:
        return host(name, disk=11, disk_ratio=1.25, reserved=Resources(disk_gb=2),
                    used_disk=3)
    fits = run([node("h1")], spec(need=Resources(disk_gb=8)))
    assert passed(fits) == ["h1"]
    assert disk_filter(node("h1"), spec(need=Resources(disk_gb=8))) is None
    full = run([node("h1")], spec(need=Resources(disk_gb=9)))
    assert verdicts(full) == {"h1": ("DiskFilter", "free disk 8 GB < 9 GB requested")}


def test_core_filter_applies_the_ratio_and_the_reserved_amount() -> None:
    # limit = floor(3 * 1.9) - 1 = 4 (5.7 rounds down); 1 used: 3 free.
    def node(name: str) -> HostState:
        return host(name, vcpus=3, cpu_ratio=1.9, reserved=Resources(vcpus=1), used_vcpus=1)
    fits = run([node("h1")], spec(need=Resources(vcpus=3)))
    assert passed(fits) == ["h1"]
    assert core_filter(node("h1"), spec(need=Resources(vcpus=3))) is None
    full = run([node("h1")], spec(need=Resources(vcpus=4)))
    assert verdicts(full) == {"h1": ("CoreFilter", "free vCPUs 3 < 4 requested")}


def test_the_cuts_run_in_order_retry_ram_disk_core() -> None:
    hosts = [host("tried", mem=512, disk=5, vcpus=0), host("ram", mem=512, disk=5, vcpus=0),
             host("disk", disk=5, vcpus=0), host("cpu", vcpus=0)]
    ranking = run(hosts, spec(exclude=["tried"]))
    assert verdicts(ranking) == {
        "tried": ("RetryFilter", "a build of this instance already failed here"),
        "ram": ("RamFilter", "free RAM 512 MB < 1024 MB requested"),
        "disk": ("DiskFilter", "free disk 5 GB < 10 GB requested"),
        "cpu": ("CoreFilter", "free vCPUs 0 < 1 requested")}


def test_the_cut_functions_at_the_boundary() -> None:
    # rank() tests the resources inline and asks the cut functions only for the reason:
    # both must draw the line at the same place.
    exact = host("h1", mem=2048, used_mem=1024, disk=20, used_disk=10, vcpus=2, used_vcpus=1)
    assert ram_filter(exact, spec()) is None
    assert disk_filter(exact, spec()) is None
    assert core_filter(exact, spec()) is None
    assert retry_filter(exact, spec()) is None
    more = spec(need=Resources(vcpus=2, memory_mb=1025, disk_gb=11))
    assert ram_filter(exact, more) == "free RAM 1024 MB < 1025 MB requested"
    assert disk_filter(exact, more) == "free disk 10 GB < 11 GB requested"
    assert core_filter(exact, more) == "free vCPUs 1 < 2 requested"
    assert retry_filter(exact, spec(exclude=["h1"])) == \
        "a build of this instance already failed here"


def test_every_host_considered_either_passes_or_is_rejected_once() -> None:
    rng = random.Random(3)
    hosts = [host(f"h{i:02d}", mem=rng.choice([512, 1024, 2048]),
                  disk=rng.choice([5, 10, 20]), vcpus=rng.choice([0, 1, 2]),
                  up=rng.random() > 0.2, disabled=rng.random() < 0.2,
                  zone=rng.choice(["az1", "az2"])) for i in range(60)]
    request = spec(zone="az1", exclude=["h07", "h13"])
    ranking = run(hosts, request)
    removed = [r.host.host for found in ranking.rejected.values() for r in found]
    names = passed(ranking) + removed
    assert sorted(names) == sorted(h.host for h in hosts) and ranking.considered == 60
    assert passed(ranking) and len(ranking.rejected) >= 4  # the draw exercises both sides


def test_a_resource_not_asked_for_is_not_checked() -> None:
    ranking = run([host("h1", disk=0, vcpus=0)], spec(need=Resources(memory_mb=512)))
    assert passed(ranking) == ["h1"]


# -- the policy filters ----------------------------------------------------------------

def test_compute_filter_removes_disabled_and_down_services() -> None:
    hosts = [host("ok"), host("off", disabled=True, reason="maintenance"),
             host("off-silent", disabled=True), host("down", up=False),
             host("off-and-down", disabled=True, up=False, reason="rack move")]
    ranking = run(hosts, spec())
    assert passed(ranking) == ["ok"]
    assert verdicts(ranking) == {
        "off": ("ComputeFilter", "compute service disabled (maintenance)"),
        "off-silent": ("ComputeFilter", "compute service disabled (no reason given)"),
        "down": ("ComputeFilter", "compute service down (no recent heartbeat)"),
        "off-and-down": ("ComputeFilter", "compute service disabled (rack move)")}


def test_availability_zone_filter_keeps_only_the_requested_zone() -> None:
    hosts = [host("a1", zone="az1"), host("a2", zone="az2"), host("d1")]
    in_az1 = run(hosts, spec(zone="az1"))
    assert passed(in_az1) == ["a1"]
    assert verdicts(in_az1) == {
        "a2": ("AvailabilityZoneFilter", "in availability zone 'az2', not 'az1'"),
        "d1": ("AvailabilityZoneFilter", "in availability zone 'nova', not 'az1'")}
    # Hosts in no zone aggregate are in the default zone.
    in_default = run(hosts, spec(zone=DEFAULT_ZONE))
    assert passed(in_default) == ["d1"]
    assert set(verdicts(in_default)) == {"a1", "a2"}


def test_affinity_filter_keeps_only_the_members_host() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    ranking = run(hosts, spec(group=group(GroupPolicy.AFFINITY, {"h2": 2})))
    assert passed(ranking) == ["h2"]
    assert verdicts(ranking) == {
        "h1": ("ServerGroupAffinityFilter", "affinity group's members are on h2"),
        "h3": ("ServerGroupAffinityFilter", "affinity group's members are on h2")}


def test_affinity_filter_names_every_members_host_sorted() -> None:
    ranking = run([host("h1"), host("h2"), host("h3")],
                  spec(group=group(GroupPolicy.AFFINITY, {"h3": 1, "h2": 1})))
    assert passed(ranking) == ["h2", "h3"]
    assert verdicts(ranking) == {
        "h1": ("ServerGroupAffinityFilter", "affinity group's members are on h2, h3")}


def test_affinity_filter_without_members_passes_every_host() -> None:
    ranking = run([host("h1"), host("h2")], spec(group=group(GroupPolicy.AFFINITY, {})))
    assert passed(ranking) == ["h1", "h2"]
    assert ranking.rejected == {}
    assert "ServerGroupAffinityFilter" in filter_names(ranking)


def test_anti_affinity_filter_allows_max_server_per_host() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    ranking = run(hosts, spec(group=group(GroupPolicy.ANTI_AFFINITY, {"h1": 2, "h2": 1},
                                          max_per_host=2)))
    assert passed(ranking) == ["h2", "h3"]
    assert verdicts(ranking) == {"h1": (
        "ServerGroupAntiAffinityFilter",
        "anti-affinity group has 2 member(s) here already (at most 2)")}


def test_anti_affinity_filter_defaults_to_one_member_per_host() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    ranking = run(hosts, spec(group=group(GroupPolicy.ANTI_AFFINITY, {"h2": 1})))
    assert passed(ranking) == ["h1", "h3"]
    assert verdicts(ranking) == {"h2": (
        "ServerGroupAntiAffinityFilter",
        "anti-affinity group has 1 member(s) here already (at most 1)")}


def test_soft_policies_refuse_no_host() -> None:
    hosts = [host("h1"), host("h2")]
    for policy in (GroupPolicy.SOFT_AFFINITY, GroupPolicy.SOFT_ANTI_AFFINITY):
        ranking = run(hosts, spec(group=group(policy, {"h1": 5})))
        assert sorted(passed(ranking)) == ["h1", "h2"]
        assert ranking.rejected == {}


# -- order, forced hosts, filters that do not apply ------------------------------------

def test_cuts_run_before_policy_filters() -> None:
    # Full and disabled and in the wrong zone: the resource cut reports it.
    both = host("h1", used_mem=4000, disabled=True, reason="maintenance", zone="az9")
    ranking = run([both], spec(zone="az1"))
    assert verdicts(ranking) == {"h1": ("RamFilter", "free RAM 96 MB < 1024 MB requested")}
    assert filter_names(ranking)[:4] == CUT_NAMES


def test_cuts_run_first_even_when_listed_policy_order_differs() -> None:
    order = resolve_filters(["ServerGroupAffinityFilter", "AvailabilityZoneFilter",
                             "ComputeFilter"])
    ranking = run([host("h1")], spec(zone="az1", group=group(GroupPolicy.AFFINITY, {})),
                  order)
    assert filter_names(ranking) == [*CUT_NAMES, "ServerGroupAffinityFilter",
                                     "AvailabilityZoneFilter", "ComputeFilter"]


def test_policy_filters_run_in_the_configured_order() -> None:
    bad = host("h1", disabled=True, reason="maintenance", zone="az9")
    zone_first = resolve_filters(["AvailabilityZoneFilter", "ComputeFilter"])
    compute_first = resolve_filters(["ComputeFilter", "AvailabilityZoneFilter"])
    assert verdicts(run([bad], spec(zone="az1"), zone_first))["h1"][0] == \
        "AvailabilityZoneFilter"
    assert verdicts(run([bad], spec(zone="az1"), compute_first))["h1"][0] == "ComputeFilter"


def test_only_the_enabled_policy_filters_run() -> None:
    ranking = run([host("h1", disabled=True)], spec(), resolve_filters([]))
    assert passed(ranking) == ["h1"]
    assert filter_names(ranking) == CUT_NAMES


def test_forced_host_skips_policy_filters() -> None:
    hosts = [host("h1", disabled=True, up=False, zone="az9"), host("h2"), host("h3")]
    ranking = run(hosts, spec(zone="az1", force_host="h1",
                              group=group(GroupPolicy.ANTI_AFFINITY, {"h1": 3})))
    assert passed(ranking) == ["h1"]
    assert ranking.considered == 1
    assert filter_names(ranking) == CUT_NAMES


def test_forced_host_still_gets_the_resource_and_retry_cuts() -> None:
    hosts = [host("h1", used_mem=3584), host("h2")]
    full = run(hosts, spec(force_host="h1"))
    assert passed(full) == []
    assert verdicts(full) == {"h1": ("RamFilter", "free RAM 512 MB < 1024 MB requested")}
    assert explain(full, spec(force_host="h1")).message == (
        "No valid host was found. 1 host: 1 removed by RamFilter "
        "(free RAM 512 MB < 1024 MB requested).")
    tried = run(hosts, spec(force_host="h2", exclude=["h2"]))
    assert verdicts(tried) == {"h2": ("RetryFilter",
                                      "a build of this instance already failed here")}


def test_forced_node_limits_to_that_node() -> None:
    hosts = [host("h1", node="n1"), host("h1", node="n2", disabled=True),
             host("h2", node="n3")]
    ranking = run(hosts, spec(force_node="n2"))
    assert [(h.host, h.node) for h in ranking.candidates] == [("h1", "n2")]
    assert ranking.considered == 1
    both = run(hosts, spec(force_host="h1", force_node="n1"))
    assert [(h.host, h.node) for h in both.candidates] == [("h1", "n1")]
    mismatched = run(hosts, spec(force_host="h2", force_node="n1"))
    assert mismatched.considered == 0 and mismatched.candidates == ()


def test_a_filter_that_does_not_apply_is_not_run() -> None:
    calls: list[str] = []

    def check(h: HostState, s: RequestSpec) -> str | None:
        calls.append(h.host)
        return "never"

    hosts = [host("h1"), host("h2")]
    idle = HostFilter("Recorder", check, applies=lambda s: False)
    ranking = run(hosts, spec(), [idle])
    assert calls == [] and passed(ranking) == ["h1", "h2"]
    assert "Recorder" not in filter_names(ranking)
    busy = HostFilter("Recorder", check, applies=lambda s: True)
    ranking = run(hosts, spec(), [busy])
    assert calls == ["h1", "h2"] and passed(ranking) == []
    assert "Recorder" in filter_names(ranking)


def test_default_filters_that_do_not_apply_are_left_out() -> None:
    plain = run([host("h1")], spec())
    assert filter_names(plain) == [*CUT_NAMES, "ComputeFilter"]
    zoned = run([host("h1")], spec(zone="nova"))
    assert "AvailabilityZoneFilter" in filter_names(zoned)
    anti = run([host("h1")], spec(group=group(GroupPolicy.ANTI_AFFINITY, {})))
    assert filter_names(anti) == [*CUT_NAMES, "ComputeFilter",
                                  "ServerGroupAntiAffinityFilter"]
    soft = run([host("h1")], spec(group=group(GroupPolicy.SOFT_AFFINITY, {})))
    assert filter_names(soft) == [*CUT_NAMES, "ComputeFilter"]


# -- resolve_filters -------------------------------------------------------------------

def test_resolve_filters_keeps_the_given_order() -> None:
    names = ["ServerGroupAffinityFilter", "ComputeFilter", "AvailabilityZoneFilter"]
    assert [f.name for f in resolve_filters(names)] == names
    assert [f.name for f in resolve_filters(DEFAULT_FILTERS)] == list(POLICY_FILTERS)


def test_resolve_filters_rejects_unknown_names() -> None:
    with pytest.raises(ValueError) as info:
        resolve_filters(["ComputeFilter", "NoSuchFilter", "OtherFilter"])
    assert str(info.value) == (
        "unknown scheduler filter(s) NoSuchFilter, OtherFilter; known: "
        + ", ".join(POLICY_FILTERS))


def test_resolve_filters_rejects_the_cuts() -> None:
    with pytest.raises(ValueError) as one:
        resolve_filters(["ComputeFilter", "RamFilter"])
    assert str(one.value) == ("RamFilter always runs and cannot be listed in "
                              "scheduler.enabled_filters")
    with pytest.raises(ValueError) as two:
        resolve_filters(["RetryFilter", "Bogus", "CoreFilter"])
    assert str(two.value) == ("RetryFilter, CoreFilter always run and cannot be listed in "
                              "scheduler.enabled_filters")
    assert [f.name for f in CUTS] == CUT_NAMES


# -- ranking: top, ties ----------------------------------------------------------------

def test_rank_top_k_matches_the_full_sort() -> None:
    rng = random.Random(7)
    hosts = [host(f"h{i:02d}", used_mem=rng.choice([0, 512, 1024, 2048, 3000]),
                  used_vcpus=rng.choice([0, 1, 2]), failed_builds=rng.choice([0, 0, 0, 1]))
             for i in range(40)]
    rng.shuffle(hosts)
    full = run(hosts, spec())
    assert len(full.candidates) == 40
    # The weights differ enough for the order to mean something, and tie somewhere.
    assert len({h.free for h in full.candidates}) > 5
    for k in (1, 2, 3, 5, 10, 39, 40, 41):
        top = run(hosts, spec(), top=k)
        assert top.candidates == full.candidates[:k], k
        assert top.considered == full.considered == 40


def test_ties_are_broken_by_host_then_node_name() -> None:
    hosts = [host("z"), host("a", node="n2"), host("m"), host("a", node="n1")]
    ranking = run(hosts, spec())
    assert [(h.host, h.node) for h in ranking.candidates] == [
        ("a", "n1"), ("a", "n2"), ("m", "m-n"), ("z", "z-n")]
    top = run(hosts, spec(), top=2)
    assert [(h.host, h.node) for h in top.candidates] == [("a", "n1"), ("a", "n2")]


def test_rank_orders_by_weight_before_name() -> None:
    hosts = [host("a", used_mem=2048), host("b"), host("c", used_mem=1024)]
    assert passed(run(hosts, spec())) == ["b", "c", "a"]


# -- choose ----------------------------------------------------------------------------

def ranked(n: int) -> tuple[HostState, ...]:
    """``n`` candidates on distinct hosts, best first."""
    hosts = [host(f"h{i}", used_mem=256 * i) for i in range(n)]
    candidates = run(hosts, spec()).candidates
    assert passed_hosts(candidates) == [f"h{i}" for i in range(n)]
    return candidates


def passed_hosts(states: Sequence[HostState]) -> list[str]:
    return [h.host for h in states]


def test_choose_picks_only_among_the_best_subset() -> None:
    candidates = ranked(6)
    picks = set()
    for seed in range(300):
        chosen, _ = choose(candidates, subset_size=3, alternates=2, rng=random.Random(seed))
        picks.add(chosen.host)
    assert picks == {"h0", "h1", "h2"}


def test_choose_with_subset_of_one_always_takes_the_best() -> None:
    candidates = ranked(4)
    for seed in range(50):
        for size in (0, 1):
            chosen, _ = choose(candidates, subset_size=size, alternates=2,
                               rng=random.Random(seed))
            assert chosen.host == "h0"


def test_choose_with_a_subset_larger_than_the_candidates_uses_them_all() -> None:
    candidates = ranked(3)
    picks = {choose(candidates, subset_size=10, alternates=0, rng=random.Random(s))[0].host
             for s in range(200)}
    assert picks == {"h0", "h1", "h2"}


def test_alternates_are_the_next_best_other_hosts() -> None:
    candidates = ranked(6)
    for seed in range(100):
        chosen, alternates = choose(candidates, subset_size=3, alternates=2,
                                    rng=random.Random(seed))
        expected = [h for h in passed_hosts(candidates) if h != chosen.host][:2]
        assert passed_hosts(alternates) == expected


def test_alternates_skip_other_nodes_of_the_chosen_and_repeated_hosts() -> None:
    hosts = [host("h1", node="n1"), host("h1", node="n2"), host("h2", node="n3"),
             host("h2", node="n4"), host("h3", node="n5"), host("h4", node="n6")]
    candidates = run(hosts, spec()).candidates
    chosen, alternates = choose(candidates, subset_size=1, alternates=2,
                                rng=random.Random(0))
    assert (chosen.host, chosen.node) == ("h1", "n1")
    assert [(a.host, a.node) for a in alternates] == [("h2", "n3"), ("h3", "n5")]


def test_alternates_are_at_most_the_number_asked_and_at_most_what_exists() -> None:
    candidates = ranked(3)
    assert choose(candidates, subset_size=1, alternates=0, rng=random.Random(0))[1] == ()
    chosen, alternates = choose(candidates, subset_size=1, alternates=5,
                                rng=random.Random(0))
    assert chosen.host == "h0" and passed_hosts(alternates) == ["h1", "h2"]
    only, none = choose(candidates[:1], subset_size=3, alternates=2, rng=random.Random(0))
    assert only.host == "h0" and none == ()


# -- explain ---------------------------------------------------------------------------

def test_explain_counts_per_filter_without_host_names() -> None:
    hosts = [host("alpha", used_mem=3584), host("beta", used_mem=3072),
             host("gamma", up=False)]
    request = spec(need=Resources(memory_mb=2048))
    ranking = run(hosts, request)
    assert ranking.candidates == ()
    why = explain(ranking, request)
    assert why.message == (
        "No valid host was found. 3 hosts: 2 removed by RamFilter (free RAM 512-1024 MB "
        "< 2048 MB requested), 1 removed by ComputeFilter (compute service down (no "
        "recent heartbeat)).")
    for name in ("alpha", "beta", "gamma"):
        assert name not in why.message
    assert why.details.split("\n") == [
        why.message,
        "alpha (node alpha-n): RamFilter: free RAM 512 MB < 2048 MB requested",
        "beta (node beta-n): RamFilter: free RAM 1024 MB < 2048 MB requested",
        "gamma (node gamma-n): ComputeFilter: compute service down (no recent heartbeat)"]


def test_explain_lists_filters_in_the_order_they_ran() -> None:
    hosts = [host("h1", zone="az2"), host("h2", vcpus=0), host("h3", disk=1),
             host("h4", zone="elsewhere"), host("h5", disabled=True, reason="maint")]
    request = spec(zone="az1")
    why = explain(run(hosts, request), request)
    assert why.message == (
        "No valid host was found. 5 hosts: 1 removed by DiskFilter (free disk 1 GB < 10 GB "
        "requested), 1 removed by CoreFilter (free vCPUs 0 < 1 requested), 1 removed by "
        "ComputeFilter (compute service disabled (maint)), 2 removed by "
        "AvailabilityZoneFilter (in availability zone 'az2', not 'az1'; in availability "
        "zone 'elsewhere', not 'az1').")


def test_explain_summarises_many_distinct_reasons() -> None:
    hosts = [host(f"h{i}", disabled=True, reason=r)
             for i, r in enumerate(["b", "a", "a", "c", "d", "e"])]
    why = explain(run(hosts, spec()), spec())
    assert why.message == (
        "No valid host was found. 6 hosts: 6 removed by ComputeFilter (compute service "
        "disabled (a); compute service disabled (b); compute service disabled (c); and 2 "
        "other reason(s)).")


def test_explain_details_stop_after_fifty_hosts() -> None:
    hosts = [host(f"host{i:03d}", mem=512) for i in range(63)]
    why = explain(run(hosts, spec()), spec())
    lines = why.details.split("\n")
    assert lines[0] == why.message == (
        "No valid host was found. 63 hosts: 63 removed by RamFilter (free RAM 512 MB < "
        "1024 MB requested).")
    assert len(lines) == 1 + 50 + 1
    assert lines[1] == "host000 (node host000-n): RamFilter: free RAM 512 MB < 1024 MB requested"
    assert lines[50].startswith("host049 ")
    assert lines[51] == "... and 13 more host(s)"
    assert "host050" not in why.details


def test_explain_details_of_exactly_fifty_hosts_are_complete() -> None:
    hosts = [host(f"host{i:03d}", mem=512) for i in range(50)]
    lines = explain(run(hosts, spec()), spec()).details.split("\n")
    assert len(lines) == 51
    assert lines[-1].startswith("host049 ")


def test_explain_with_no_hosts() -> None:
    why = explain(run([], spec()), spec())
    assert why.message == why.details == \
        "No valid host was found. No compute host has reported in."


def test_explain_forced_host_or_node_not_found() -> None:
    hosts = [host("h1"), host("h2")]
    forced = spec(force_host="ghost")
    why = explain(run(hosts, forced), forced)
    assert why.message == why.details == \
        "No valid host was found. The requested host ghost is not a compute node."
    by_node = spec(force_node="ghost-node")
    assert explain(run(hosts, by_node), by_node).message == \
        "No valid host was found. The requested node ghost-node is not a compute node."


def test_anti_affinity_refusal_does_not_name_hosts() -> None:
    request = spec(group=group(GroupPolicy.ANTI_AFFINITY, {"secret-a": 1, "secret-b": 1}))
    ranking = run([host("secret-a"), host("secret-b")], request)
    why = explain(ranking, request)
    assert why.message == (
        "No valid host was found. 2 hosts: 2 removed by ServerGroupAntiAffinityFilter "
        "(a member of the anti-affinity group is there already).")
    assert "secret" not in why.message
    assert "secret-a (node secret-a-n): ServerGroupAntiAffinityFilter" in why.details


def test_affinity_refusal_does_not_name_the_members_host() -> None:
    request = spec(group=group(GroupPolicy.AFFINITY, {"hidden": 1}))
    ranking = run([host("h1"), host("h2")], request)
    why = explain(ranking, request)
    assert why.message == (
        "No valid host was found. 2 hosts: 2 removed by ServerGroupAffinityFilter "
        "(not the host of the affinity group's members).")
    assert "hidden" not in why.message
    assert "h1 (node h1-n): ServerGroupAffinityFilter: affinity group's members are on " \
        "hidden" in why.details
