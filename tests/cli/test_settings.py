"""One settings model: precedence, and one clear line per bad setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from statepump.core.errors import ConfigError
from statepump.settings import load


def test_flags_beat_environment_which_beats_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "statepump.toml"
    toml.write_text('partition = "1"\nconsumer_group = "from-file"\neventhub = "file-hub"\n')
    env = {"STATEPUMP_CONFIG": str(toml), "STATEPUMP_PARTITION": "2", "STATEPUMP_CONSUMER_GROUP": "from-env"}
    s = load({"partition": "3"}, environ=env)
    assert (s.partition, s.consumer_group, s.eventhub) == ("3", "from-env", "file-hub")
    s = load({}, environ=env)
    assert s.partition == "2"


def test_eventhub_defaults_to_the_connection_strings_entity_path() -> None:
    s = load(
        {
            "connection_string": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=x;EntityPath=orders"
        },
        environ={},
    )
    assert s.resolved_eventhub() == "orders"
    assert s.resolved_capture_namespace() == "ns"
    assert load({}, environ={}).resolved_eventhub() == "hub"


SECRET = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRETKEY"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"connection_string": SECRET, "namespace": "x.servicebus.windows.net"}, "--connection-string or --namespace"),
        ({"snapshot_container": "snaps"}, "--storage-connection-string or --storage-account-url"),
        (
            {"snapshot_dir": "a", "snapshot_container": "b", "storage_account_url": "https://a"},
            "--snapshot-dir or --snapshot-container",
        ),
        ({"listen": "0.0.0.0:8080"}, "not a loopback address; add --listen-any"),
        ({"listen": "localhost"}, "--listen (STATEPUMP_LISTEN / listen): must be HOST:PORT"),
        ({"partition": "a/b"}, "--partition (STATEPUMP_PARTITION / partition)"),
        ({"port": "many"}, "--port (STATEPUMP_PORT / port)"),
        ({"gc_interval": "-1"}, "--gc-interval"),
        ({"catchup_publish_interval": "-0.5"}, "--catchup-publish-interval"),
        ({"poison_policy": "ignore"}, "--poison-policy"),
        ({"capture_name_format": "{Year}/{Month}"}, "lacks the mandatory field"),
        ({"data": "d", "in_memory": True}, "--data or --in-memory"),
    ],
)
def test_each_bad_setting_is_one_line_naming_it_and_never_echoes_secrets(
    flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(flags, environ={})
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert "TOPSECRETKEY" not in text


def test_a_bad_toml_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("partition = \n")
    with pytest.raises(ConfigError, match=r"--config: .*bad.toml is not valid TOML"):
        load({"config": str(bad)}, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('partiton = "1"\n')
    with pytest.raises(ConfigError, match=r"unknown setting.*partiton"):
        load({"config": str(unknown)}, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load({"config": str(tmp_path / "missing.toml")}, environ={})


def test_the_command_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "statepump", "run", "--listen", "10.1.2.3:80", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "statepump run: invalid settings: --listen 10.1.2.3 is not a loopback address; add --listen-any to allow it"
    ]


def test_an_unknown_reducer_is_a_clear_error(tmp_path: Path) -> None:
    from statepump.components import make_pump

    with pytest.raises(ConfigError, match="reducer: cannot import module 'nope'"):
        make_pump(load({"reducer": "nope:f", "data_dir": str(tmp_path)}, environ={}), source=object())  # type: ignore[arg-type]


def test_json_is_the_flag_the_variable_and_the_toml_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("json = true\n")
    assert load({}, environ={"STATEPUMP_JSON": "true"}).json_output
    assert not load({}, environ={"JSON": "true"}).json_output  # an unprefixed variable is not ours
    assert load({"config": str(toml)}, environ={}).json_output
    assert not load({"config": str(toml)}, environ={"STATEPUMP_JSON": "false"}).json_output


def test_the_catch_up_publish_interval_reaches_the_pump() -> None:
    from statepump.components import make_pump
    from statepump.sources.memory import MemorySource

    s = load({"catchup_publish_interval": "0.25"}, environ={})
    pump = make_pump(s, source=MemorySource(), store=None)
    assert pump.catchup_publish_interval == 0.25
    assert load({}, environ={}).catchup_publish_interval == 1.0
