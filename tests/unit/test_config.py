"""Settings: defaults, the TOML file, STRATO_* variables, and their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from strato.config import load_settings
from strato.domain.errors import Invalid


def test_defaults_use_sqlite_in_the_data_dir_and_the_memory_bus(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}"
    assert settings.rpc.transport_url == "memory://"
    assert settings.compute.driver == "auto"


def test_file_then_environment_then_arguments(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "strato.toml"
    config.write_text('[rpc]\ntransport_url = "amqp://guest:guest@127.0.0.1:5672/x"\n'
                      '[compute]\nhost = "from-file"\nmax_concurrent_builds = 3\n'
                      '[api]\nlisten = "127.0.0.1:9000"\n')
    monkeypatch.setenv("STRATO_COMPUTE__HOST", "from-env")
    settings = load_settings(config, api={"listen": "127.0.0.1:9999"})
    assert settings.rpc.transport_url.endswith("/x")          # the file
    assert settings.compute.max_concurrent_builds == 3        # the file
    assert settings.compute.host == "from-env"                # env beats the file
    assert settings.api.listen == "127.0.0.1:9999"            # arguments beat both


def test_config_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[scheduler]\nmax_attempts = 7\n')
    monkeypatch.setenv("STRATO_CONFIG", str(config))
    assert load_settings().scheduler.max_attempts == 7


def test_missing_file_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    config = tmp_path / "bad.toml"
    config.write_text("colour = 'blue'\n")
    with pytest.raises(ValueError, match="colour"):
        load_settings(config)


def test_auto_driver_is_libvirt_only_where_libvirtd_runs(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from strato import bootstrap

    settings = load_settings(data_dir=tmp_path)
    monkeypatch.setattr(bootstrap, "LIBVIRT_SOCKET", tmp_path / "no-such-socket")
    assert bootstrap.driver_kind(settings.compute) == "fake"
    sock = tmp_path / "libvirt-sock"
    sock.touch()
    monkeypatch.setattr(bootstrap, "LIBVIRT_SOCKET", sock)
    assert bootstrap.driver_kind(settings.compute) == "libvirt"
    explicit = load_settings(data_dir=tmp_path, compute={"driver": "fake"})
    assert bootstrap.driver_kind(explicit.compute) == "fake"
