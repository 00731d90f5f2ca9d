"""The scheduler's filters, weigher and "no valid host" explanation (pure)."""

from __future__ import annotations

from strato.domain.ids import HostName, NodeName
from strato.domain.requests import SchedulerHints
from strato.domain.resources import NodeCapacity, NodeUsage, Resources
from strato.scheduler.select import RequestSpec, explain, rank_nodes


def node(host: str, *, mem: int = 4096, used_mem: int = 0, up: bool = True,
         disabled: bool = False, disk: int = 100, vcpus: int = 4) -> NodeUsage:
    cap = NodeCapacity(host=HostName(host), node=NodeName(host),
                       total=Resources(vcpus=vcpus, memory_mb=mem, disk_gb=disk),
                       ram_allocation_ratio=1.0, cpu_allocation_ratio=1.0)
    return NodeUsage(capacity=cap, used=Resources(memory_mb=used_mem), service_up=up,
                     service_disabled=disabled, disabled_reason="maintenance" if disabled else None)


NEED = Resources(vcpus=1, memory_mb=1024, disk_gb=10)


def test_spreads_by_free_ram() -> None:
    ranking = rank_nodes([node("a", used_mem=3500), node("b"), node("c", used_mem=1000)],
                         RequestSpec(need=NEED))
    assert [n.host for n in ranking.candidates] == ["b", "c"]
    assert [r.host for r in ranking.rejections] == ["a"]


def test_ties_are_broken_by_name_for_determinism() -> None:
    ranking = rank_nodes([node("z"), node("a"), node("m")], RequestSpec(need=NEED))
    assert [n.host for n in ranking.candidates] == ["a", "m", "z"]


def test_each_rejection_names_filter_and_reason() -> None:
    nodes = [node("down", up=False), node("off", disabled=True), node("full", used_mem=4000),
             node("tried"), node("tiny", disk=5)]
    spec = RequestSpec(need=NEED, exclude_hosts=frozenset({HostName("tried")}))
    ranking = rank_nodes(nodes, spec)
    assert ranking.candidates == ()
    by_host = {r.host: (r.filter, r.reason) for r in ranking.rejections}
    assert by_host["down"][0] == "ComputeFilter" and "down" in by_host["down"][1]
    assert by_host["off"] == ("ComputeFilter", "compute service disabled (maintenance)")
    assert by_host["full"] == ("ResourceFilter", "RAM: needs 1024 MB, 96 MB free")
    assert by_host["tried"][0] == "RetryFilter"
    assert by_host["tiny"] == ("ResourceFilter", "disk: needs 10 GB, 5 GB free")
    message = explain(ranking.rejections, considered=len(nodes))
    assert message.startswith("No valid host was found. 5 host(s) considered")
    assert "full removed by ResourceFilter: RAM: needs 1024 MB, 96 MB free" in message


def test_explain_with_no_hosts_says_none_reported() -> None:
    assert "no compute host has reported" in explain((), considered=0)


def test_availability_zone_and_force_host() -> None:
    nodes = [node("a"), node("b")]
    assert rank_nodes(nodes, RequestSpec(
        need=NEED, hints=SchedulerHints(availability_zone="elsewhere"))).candidates == ()
    assert [n.host for n in rank_nodes(nodes, RequestSpec(
        need=NEED, hints=SchedulerHints(availability_zone="nova"))).candidates] == ["a", "b"]
    forced = rank_nodes(nodes, RequestSpec(need=NEED,
                                           hints=SchedulerHints(force_host=HostName("b"))))
    assert [n.host for n in forced.candidates] == ["b"]


def test_allocation_ratios_and_reserved_set_the_limit() -> None:
    cap = NodeCapacity(host=HostName("h"), node=NodeName("h"),
                       total=Resources(vcpus=2, memory_mb=1000, disk_gb=10),
                       cpu_allocation_ratio=4.0, ram_allocation_ratio=1.5,
                       reserved=Resources(memory_mb=100))
    assert cap.limit == Resources(vcpus=8, memory_mb=1400, disk_gb=10)
