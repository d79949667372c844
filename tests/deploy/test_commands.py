"""The command-line checker the deploy tests rely on must itself reject bad command lines."""

from __future__ import annotations

import pytest

from tests.deploy.commands import SHARED_SETTINGS, SWITCHES, problems

SCRIPTS = {"statepump", "snapshotter"}


@pytest.mark.parametrize(
    "argv",
    [
        ["statepump", "run", "--config", "/etc/statepump/statepump.toml", "--socket", "/run/s.sock"],
        ["statepump", "run", "--partition=1", "--log-level", "DEBUG"],
        ["statepump", "health", "--ready", "--socket", "/run/s.sock"],
        ["/opt/statepump/bin/snapshotter", "--keep", "10", "--json", "--dry-run"],
        ["snapshotter", "--continuous", "--interval", "600", "--rebuild"],
    ],
)
def test_accepts_command_lines_of_the_settings_model(argv: list[str]) -> None:
    assert problems(argv, SCRIPTS) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["statepump", "run", "--sockett", "/x"], "unknown flag '--sockett'"),
        (["statepump", "run", "--keep", "3"], "unknown flag '--keep'"),
        (["snapshotter", "--socket", "/x"], "unknown flag '--socket'"),
        (["statepump", "health", "--partition", "0"], "unknown flag '--partition'"),
        (["statepump", "run", "--socket"], "'--socket' needs a value"),
        (["statepump", "run", "--socket", "--log-level", "INFO"], "'--socket' needs a value"),
        (["snapshotter", "--json=yes"], "takes no value"),
        (["statepump", "run", "stray"], "unexpected argument 'stray'"),
        (["statepump", "serve"], "not a known statepump subcommand"),
        (["statepump"], "not a known statepump subcommand"),
        (["python", "-m", "statepump"], "not a console command"),
        ([], "empty command"),
    ],
)
def test_rejects_what_the_commands_do_not_accept(argv: list[str], expected: str) -> None:
    found = problems(argv, SCRIPTS)
    assert len(found) == 1
    assert expected in found[0]


RUN_ONLY_RELAY = {
    "history",
    "history-bytes",
    "relay-token-file",
    "tls-cert",
    "tls-key",
    "upstream",
    "upstream-ca",
    "upstream-fallback",
}


def test_every_shared_setting_is_a_flag_of_run_and_of_the_snapshotter() -> None:
    assert {"connection-string", "snapshot-container", "socket", "log-level"} <= SHARED_SETTINGS
    for name in SHARED_SETTINGS:
        argv = [f"--{name}"] if name in SWITCHES else [f"--{name}", "v"]
        assert problems(["statepump", "run", *argv], SCRIPTS) == []
        # The query socket and the relay settings are run's alone.
        if name not in {"socket", "socket-group", "listen", "listen-any", *RUN_ONLY_RELAY}:
            assert problems(["snapshotter", *argv], SCRIPTS) == []
