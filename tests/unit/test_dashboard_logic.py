"""The dashboard's pure parts: the build timeline, the wizard's steps and the quota fit."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from strato.dashboard.launch import STEPS, LaunchForm, flavor_fit, step_of_error
from strato.dashboard.timeline import build_timeline, parse_time


def _event(name: str, start: str, finish: str | None, result: str | None = "Success",
           **extra: object) -> dict[str, object]:
    return {"event": name, "start_time": f"2026-11-22T10:00:{start}",
            "finish_time": finish and f"2026-11-22T10:00:{finish}", "result": result, **extra}


def test_timeline_puts_the_api_first_and_places_bars_on_one_axis() -> None:
    action = {"action": "create", "start_time": "2026-11-22T10:00:00.000000",
              "events": [_event("compute_spawn", "03.000000", "05.000000"),
                         _event("conductor_schedule_and_build_instances", "01.000000",
                                "02.000000", details="placed on a host"),
                         _event("compute__do_build_and_run_instance", "02.000000",
                                "10.000000")]}
    timeline = build_timeline(action, now=datetime(2026, 11, 22, 11, tzinfo=UTC))
    assert [b.label for b in timeline.bars] == ["api", "scheduling", "build on the host",
                                                "spawn"]
    api, scheduling, build, spawn = timeline.bars
    assert api.duration == 1.0 and api.left == 0.0
    assert timeline.total == 10.0 and not timeline.running
    assert (spawn.left, spawn.width, spawn.duration) == (30.0, 20.0, 2.0)
    assert build.left == 20.0 and build.width == 80.0
    assert scheduling.details == "placed on a host"


def test_a_running_step_extends_to_now_and_an_error_keeps_its_message() -> None:
    now = datetime(2026, 11, 22, 10, 0, 4, tzinfo=UTC)
    action = {"start_time": "2026-11-22T10:00:00Z",
              "events": [_event("conductor_schedule_and_build_instances", "00.5", "01",
                                result="Error", traceback="No valid host was found."),
                         _event("compute_boot", "02", None, result=None)]}
    timeline = build_timeline(action, now=now)
    assert timeline.running and timeline.total == 4.0
    failed, boot = timeline.bars[1:]
    assert failed.result == "Error" and failed.message == "No valid host was found."
    assert boot.result == "running" and boot.duration == 2.0 and boot.width == 50.0


def test_a_create_without_events_has_no_bars_and_times_parse_as_utc() -> None:
    assert build_timeline({"start_time": "2026-11-22T10:00:00", "events": []}).bars == ()
    assert parse_time("2026-11-22T10:00:00") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert parse_time("not a time") is None and parse_time(None) is None


def test_each_step_names_what_is_missing() -> None:
    form = LaunchForm(name="", count="0")
    assert form.validate("details") == {
        "name": "An instance needs a name.",
        "count": "The count must be a whole number from 1 to 100."}
    assert LaunchForm(name="x" * 256).validate("details")["name"].startswith("The name is")
    assert LaunchForm(name="ok", count="3").validate("details") == {}
    assert "image" in LaunchForm().validate("source")
    gone = LaunchForm(image="a").validate("source", images={"b": {}})
    assert gone == {"image": "That image is not available (any more)."}
    assert "user_data" in LaunchForm(user_data="x" * 70000).validate("configuration")


def test_the_flavor_step_refuses_what_the_quota_cannot_hold() -> None:
    limits = {"maxTotalCores": 4, "totalCoresUsed": 2, "maxTotalRAMSize": 8192,
              "totalRAMUsed": 0, "maxTotalInstances": 10, "totalInstancesUsed": 1}
    small = {"id": "s", "vcpus": 1, "ram": 512, "disk": 1}
    big = {"id": "b", "vcpus": 2, "ram": 512, "disk": 1}
    assert flavor_fit(small, 2, limits).fits
    fit = flavor_fit(big, 2, limits)
    assert not fit.fits and fit.reasons == ("vCPUs 2 used + 4 > 4 allowed",)
    assert fit.percent(2, 4, 4) == 100 and fit.percent(1, 1, None) == 0
    errors = LaunchForm(flavor="b", count="2").validate(
        "flavor", flavors={"b": big}, limits=limits)
    assert errors["flavor"].startswith("Not enough quota left for this flavor: vCPUs")
    unlimited = {**limits, "maxTotalCores": -1}
    assert flavor_fit(big, 50, unlimited).usage[1] == ("vCPUs", 2, 100, None)
    disk = LaunchForm(flavor="s", image="i").validate(
        "flavor", flavors={"s": small}, images={"i": {"min_disk": 5}}, limits=limits)
    assert disk == {"flavor": "The image needs a disk of at least 5 GB; this flavor has 1 GB."}


def test_the_answers_travel_as_hidden_fields_and_become_the_create_body() -> None:
    fields = {"name": ["web"], "count": ["2"], "zone": ["nova"], "image": ["img"],
              "flavor": ["1"], "networks": ["n1", "n2"], "security_groups": ["web"],
              "key_name": ["k"], "user_data": ["#!/bin/sh\necho <hi>\n"],
              "config_drive": ["1"], "step": ["access"], "seen": ["details,source"]}
    form = LaunchForm.from_fields(fields)
    assert form.seen == {"details", "source"}
    hidden = dict(form.hidden("access"))
    assert "security_groups" not in hidden and hidden["seen"] == "access,details,source"
    again = LaunchForm.from_fields({k: [v] for k, v in form.hidden("access")}
                                   | {"networks": ["n1", "n2"],
                                      "security_groups": ["web"], "key_name": ["k"],
                                      "step": ["access"]})
    assert again.body() == form.body()
    assert form.body() == {
        "name": "web", "imageRef": "img", "flavorRef": "1", "min_count": 2,
        "max_count": 2, "availability_zone": "nova",
        "networks": [{"uuid": "n1"}, {"uuid": "n2"}],
        "security_groups": [{"name": "web"}], "key_name": "k",
        "user_data": base64.b64encode(b"#!/bin/sh\necho <hi>\n").decode(),
        "config_drive": True}
    # A textarea's CRLF line breaks reach the guest as LF (a shebang must end in "\n").
    crlf = LaunchForm.from_fields({"user_data": ["#!/bin/sh\r\necho hi\r\n"]})
    assert crlf.user_data == "#!/bin/sh\necho hi\n"
    # Before the access step is reached, the default security group stands.
    assert LaunchForm.from_fields({"name": ["a"]}).security_groups == ["default"]
    # Unticking every group on the access step means none.
    assert LaunchForm.from_fields({"step": ["access"]}).security_groups == []


def test_api_refusals_land_on_the_step_they_are_about() -> None:
    keys = {k for k, _ in STEPS}
    cases = {"Flavor 9 could not be found.": "flavor",
             "Image abc could not be found.": "source",
             "Network n1 could not be found.": "networks",
             "Invalid key_name provided.": "access",
             "Unable to find security_group with name or id x": "access",
             "User data needs to be valid base 64.": "configuration",
             "Quota exceeded for cores": "flavor",
             "something else": "configuration"}
    for message, step in cases.items():
        assert step_of_error(message) == step and step in keys


def test_a_silent_guest_shows_its_boot_running_until_the_compute_records_it() -> None:
    spawned = {"start_time": "2026-11-22T10:00:00Z",
               "events": [_event("compute_spawn", "01", "02")]}
    soon = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    bars = build_timeline(spawned, now=soon).bars
    assert [(b.event, b.result) for b in bars][-1] == ("compute_boot", "running")
    assert bars[-1].duration == 3.0
    assert bars[-1].details == "waiting for the guest's first console output"
    # Recorded: the real bar only; long silent: no guess.
    booted = {**spawned, "events": [*spawned["events"], _event("compute_boot", "02", "04")]}
    assert [b.result for b in build_timeline(booted, now=soon).bars][-1] == "Success"
    later = datetime(2026, 11, 22, 10, 10, tzinfo=UTC)
    assert build_timeline(spawned, now=later).bars[-1].event == "compute_spawn"
