"""Domain rules: states, transitions, flavors, the error wire form, the tracker."""

from __future__ import annotations

import pytest

from strato.compute.tracker import ResourceTracker
from strato.domain import errors
from strato.domain.ids import FlavorId, HostName, InstanceId, NodeName
from strato.domain.instances import TaskState, VmState, api_status, check_task_transition
from strato.domain.resources import Flavor, NodeCapacity, Resources


def test_build_walk_is_allowed_and_skipping_back_is_not() -> None:
    steps = [TaskState.SCHEDULING, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING,
             TaskState.SPAWNING, None]
    for current, new in zip(steps, steps[1:], strict=False):
        check_task_transition(current, new)
    with pytest.raises(errors.InvalidState):
        check_task_transition(TaskState.SPAWNING, TaskState.NETWORKING)
    with pytest.raises(errors.InvalidState):
        check_task_transition(TaskState.DELETING, TaskState.SPAWNING)


@pytest.mark.parametrize("state", list(TaskState))
def test_delete_may_follow_any_task_state(state: TaskState) -> None:
    check_task_transition(state, TaskState.DELETING)


@pytest.mark.parametrize(("vm", "status"), [
    (VmState.BUILDING, "BUILD"), (VmState.ACTIVE, "ACTIVE"), (VmState.ERROR, "ERROR"),
    (VmState.STOPPED, "SHUTOFF"), (VmState.DELETED, "DELETED"),
])
def test_api_status(vm: VmState, status: str) -> None:
    assert api_status(vm, None) == status
    assert api_status(vm, TaskState.DELETING) == status


def test_flavor_resources_count_swap_and_ephemeral_as_disk() -> None:
    flavor = Flavor(id=FlavorId("x"), name="x", vcpus=2, memory_mb=512, root_gb=10,
                    ephemeral_gb=5, swap_mb=1025)
    assert flavor.resources == Resources(vcpus=2, memory_mb=512, disk_gb=17)


@pytest.mark.parametrize("cls", [errors.NotFound, errors.InvalidState, errors.NoValidHost,
                                 errors.RescheduleBuild, errors.AbortBuild])
def test_errors_round_trip_by_name(cls: type[errors.StratoError]) -> None:
    back = errors.error_from_wire(errors.error_to_wire(cls("why")))
    assert type(back) is cls and back.message == "why"


def test_unknown_error_type_degrades_to_base() -> None:
    back = errors.error_from_wire({"type": "FromTheFuture", "message": "m"})
    assert type(back) is errors.StratoError and str(back) == "m"


def test_tracker_claims_against_real_capacity_and_releases_on_failure() -> None:
    tracker = ResourceTracker()
    tracker.update_capacities([NodeCapacity(
        host=HostName("h"), node=NodeName("n"), total=Resources(vcpus=2, memory_mb=1000,
                                                                  disk_gb=10),
        ram_allocation_ratio=1.0, cpu_allocation_ratio=1.0)])
    need = Resources(vcpus=1, memory_mb=600, disk_gb=1)
    with tracker.claim(InstanceId("a"), NodeName("n"), need):
        pass
    with pytest.raises(errors.RescheduleBuild, match="RAM: needs 600 MB, 400 MB free"):
        with tracker.claim(InstanceId("b"), NodeName("n"), need):
            pass
    with pytest.raises(RuntimeError):
        with tracker.claim(InstanceId("c"), NodeName("n"), Resources(memory_mb=100)):
            raise RuntimeError("spawn failed")
    assert tracker.statistics().instances == 1
    tracker.release(InstanceId("a"))
    assert tracker.statistics().used == Resources()


def test_a_subclass_from_elsewhere_travels_as_its_nearest_known_ancestor() -> None:
    class InspectError(errors.Invalid):
        pass

    back = errors.error_from_wire(errors.error_to_wire(InspectError("bad header")))
    assert type(back) is errors.Invalid and back.message == "bad header"
