"""``strato policy sample`` and ``strato policy check --file PATH``, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strato.api.policies import DEFAULT_RULES, default_policy
from strato.cli import app

CREATE = "os_compute_api:servers:create"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sample_prints_the_default_policy_s_sample() -> None:
    code, out, err = run("policy", "sample")
    assert (code, err) == (0, "")
    assert out == default_policy().sample()
    assert out.count('\n#"') == len(DEFAULT_RULES)


def test_the_printed_sample_checks_as_overriding_nothing(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(run("policy", "sample")[1])
    assert run("policy", "check", "--file", str(path)) == (0, "ok: 0 rules overridden\n", "")
    uncommented = "\n".join(line[1:] if line.startswith('#"') else line
                            for line in path.read_text().splitlines())
    path.write_text(uncommented)
    assert run("policy", "check", "--file", str(path)) == (0, "ok: 0 rules overridden\n", "")


@pytest.mark.parametrize(("name", "text", "changed"), [
    ("policy.yaml", f'"{CREATE}": "role:admin"\n', 1),
    ("policy.yaml", f'"{CREATE}": "role:admin"\n"admin_api": "role:admin"\n', 1),
    ("policy.json", json.dumps({CREATE: "role:admin", "get_network": "@"}), 2),
    ("policy.yaml", "", 0),
])
def test_check_counts_the_rules_a_file_changes(tmp_path: Path, name: str, text: str,
                                               changed: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert run("policy", "check", "--file", str(path)) == \
        (0, f"ok: {changed} rules overridden\n", "")


@pytest.mark.parametrize(("text", "reason"), [
    ('"os_compute_api:servers:explode": "role:admin"\n', "unknown rule"),
    (f'"{CREATE}": "role:admin and"\n', "ends too early"),
    (f'"{CREATE}": 5\n', "must be a string"),
    ("- role:admin\n", "must map rule names"),
    (f'"{CREATE}": [role:admin\n', "cannot read the policy file"),
])
def test_check_prints_why_a_file_is_invalid_and_exits_1(tmp_path: Path, text: str,
                                                        reason: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    code, out, err = run("policy", "check", "--file", str(path))
    assert (code, out) == (1, "")
    assert reason in err
    assert "Traceback" not in err


def test_check_names_a_missing_file_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    code, out, err = run("policy", "check", "--file", str(path))
    assert (code, out) == (1, "")
    assert f"cannot read the policy file {path}" in err


def test_check_needs_a_file() -> None:
    code, _, err = run("policy", "check")
    assert code == 2
    assert "--file" in err


def test_policy_is_listed_in_the_help() -> None:
    code, out, _ = run("policy", "--help")
    assert code == 0
    assert "sample" in out and "check" in out
    assert "policy" in run("--help")[1]
