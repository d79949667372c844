"""examples/pump_settings.py: an embedded pump's settings come from statepump's own variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from examples.pump_settings import hub_settings
from statepump.core.errors import ConfigError

EMULATOR = (
    "Endpoint=sb://127.0.0.1:5672/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=emulator-accepts-any-key;EntityPath=config;UseDevelopmentEmulator=true"
)


@pytest.fixture(autouse=True)
def no_statepump_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("STATEPUMP_")]:
        monkeypatch.delenv(name)


def test_no_hub_is_a_config_error_saying_what_to_set() -> None:
    with pytest.raises(ConfigError, match="STATEPUMP_CONNECTION_STRING"):
        hub_settings()


def test_the_environment_names_hub_partition_and_snapshots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATEPUMP_CONNECTION_STRING", EMULATOR)
    monkeypatch.setenv("STATEPUMP_PARTITION", "3")
    monkeypatch.setenv("STATEPUMP_SNAPSHOT_DIR", str(tmp_path))
    settings = hub_settings()
    assert (settings.resolved_eventhub(), settings.partition, str(settings.snapshot_directory)) == (
        "config",
        "3",
        str(tmp_path),
    )


def test_a_toml_file_named_by_statepump_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "statepump.toml"
    config.write_text('namespace = "myns.servicebus.windows.net"\neventhub = "prices"\npartition = "1"\n')
    monkeypatch.setenv("STATEPUMP_CONFIG", str(config))
    settings = hub_settings()
    assert (settings.namespace, settings.resolved_eventhub(), settings.partition) == (
        "myns.servicebus.windows.net",
        "prices",
        "1",
    )


def test_a_bad_setting_names_the_setting_and_not_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEPUMP_CONNECTION_STRING", EMULATOR)
    monkeypatch.setenv("STATEPUMP_PARTITION", "a/b")
    with pytest.raises(ConfigError) as caught:
        hub_settings()
    assert "--partition" in str(caught.value)
    assert "emulator-accepts-any-key" not in str(caught.value)
