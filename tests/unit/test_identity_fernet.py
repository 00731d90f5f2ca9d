"""The Fernet key repository and token codec."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from strato.identity.fernet import (
    KeyRepository,
    TokenCodec,
    TokenPayload,
    TokenRefused,
    new_audit_id,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _payload(expires_in: float = 3600, project: str | None = "p1") -> TokenPayload:
    return TokenPayload(user_id="u1", project_id=project, methods=("password",),
                        audit_ids=(new_audit_id(),), issued_at=NOW,
                        expires_at=NOW + timedelta(seconds=expires_in))


def _names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_first_use_creates_staged_and_primary_keys_privately(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "fernet-keys")
    repo.ensure()
    assert _names(repo.path) == ["0", "1"]
    assert stat.S_IMODE(repo.path.stat().st_mode) == 0o700
    for key in repo.path.iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    primary = (repo.path / "1").read_bytes()
    repo.ensure()  # idempotent
    assert repo.keys()[0] == primary


def test_rotation_promotes_the_staged_key_and_keeps_at_most_max(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path, max_active_keys=3)
    repo.ensure()
    staged = (tmp_path / "0").read_bytes()
    assert repo.rotate() == 2
    assert (tmp_path / "2").read_bytes() == staged
    assert _names(tmp_path) == ["0", "1", "2"]
    assert repo.rotate() == 3
    assert _names(tmp_path) == ["0", "2", "3"]


def test_a_round_trip_keeps_every_field(tmp_path: Path) -> None:
    codec = TokenCodec(KeyRepository(tmp_path))
    payload = _payload()
    token = codec.encode(payload)
    assert token.startswith("gAAAAA")
    assert codec.decode(token, NOW) == payload
    unscoped = _payload(project=None)
    assert codec.decode(codec.encode(unscoped), NOW).project_id is None


def test_tokens_survive_rotations_until_their_key_ages_out(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path, max_active_keys=3)
    codec = TokenCodec(repo)
    token = codec.encode(_payload())
    repo.rotate()  # its key becomes a secondary
    assert codec.decode(token, NOW).user_id == "u1"
    newer = codec.encode(_payload())
    repo.rotate()  # its key is dropped
    with pytest.raises(TokenRefused):
        codec.decode(token, NOW)
    assert codec.decode(newer, NOW).user_id == "u1"


def test_the_key_generation_changes_with_the_key_set_only(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path, max_active_keys=3)
    codec = TokenCodec(repo)
    first = codec.key_generation()
    codec.decode(codec.encode(_payload()), NOW)
    assert codec.key_generation() == first
    # A rotation by another process (its own repository object on the same directory).
    KeyRepository(tmp_path, max_active_keys=3).rotate()
    assert codec.key_generation() != first


def test_a_token_from_the_staged_key_is_accepted(tmp_path: Path) -> None:
    # Another host rotated first: its primary is our staged key.
    repo = KeyRepository(tmp_path)
    repo.ensure()
    other = Fernet((tmp_path / "0").read_bytes())
    token = other.encrypt(_payload().to_json()).decode()
    assert TokenCodec(repo).decode(token, NOW).user_id == "u1"


def test_expired_tampered_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    codec = TokenCodec(KeyRepository(tmp_path))
    token = codec.encode(_payload(expires_in=60))
    with pytest.raises(TokenRefused, match="expired"):
        codec.decode(token, NOW + timedelta(seconds=60))
    tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    foreign = Fernet(Fernet.generate_key()).encrypt(_payload().to_json()).decode()
    not_json = TokenCodec(KeyRepository(tmp_path))._fernet().encrypt(b"{").decode()
    for bad in (tampered, foreign, not_json, "", "garbage"):
        with pytest.raises(TokenRefused):
            codec.decode(bad, NOW)


def test_at_least_two_keys_are_kept(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KeyRepository(tmp_path, max_active_keys=1)


def test_the_cli_rotates_the_configured_repository(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from strato.cli import app

    monkeypatch.setenv("STRATO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STRATO_CONFIG", raising=False)
    for expected in ("2", "3", "4"):
        result = CliRunner().invoke(app, ["identity", "rotate-keys"])
        assert result.exit_code == 0, result.output
        assert result.output.strip().endswith(f"primary key is now {expected}")
    assert _names(tmp_path / "fernet-keys") == ["0", "3", "4"]
