"""What a new user meets first (issue 18): usage errors, settings checked before anything starts,
the ready line, query output, and the embedded default's local snapshots across a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli.test_run_send import Sidecar, statepump


def test_an_unknown_flag_is_reported_by_its_subcommand_with_its_usage(tmp_path: Path) -> None:
    for args, usage in (
        (["run", "--frobnicate"], "usage: statepump run "),
        (["query", "--frobnicate"], "usage: statepump query "),
        (["snapshot", "inspect", "f", "--frobnicate"], "usage: statepump snapshot inspect "),
    ):
        result = statepump(*args, data=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(usage), result.stderr
        command = usage.removeprefix("usage: ").strip()
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{command}: error: unrecognized arguments: --frobnicate"), last


def test_a_bad_reducer_is_found_before_anything_is_created(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = statepump("run", "--reducer", "nosuchmod:fn", data=data)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "statepump run: --reducer: cannot import module 'nosuchmod': No module named 'nosuchmod'"
    ]
    assert not data.exists()  # no emulator log, no embedded.json, no directory at all


def test_a_bad_connection_string_names_the_flag(tmp_path: Path) -> None:
    event = '{"op": "set", "path": "a", "value": 1}'
    result = statepump("send", "--connection-string", "Endpoint=sb://h/;secret-part", event, data=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "statepump send: --connection-string: every part must be Name=Value (one part has no '=')"
    ]
    assert "secret-part" not in result.stderr


def _wait_for_line(log: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if text in line:
                return line
        time.sleep(0.05)  # poll interval of the condition "the line is in the log"
    pytest.fail(f"no line with {text!r} within {timeout} s:\n{log.read_text()}")


@pytest.mark.emulator
def test_ready_line_query_output_and_a_restart_from_the_local_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Sidecar(data, tmp_path / "run1.log")
    try:
        first.wait_ready()
        assert _wait_for_line(first.log, "ready:").endswith(
            f"INFO statepump: ready: serving sequence -1 on socket {data / 'statepump.sock'}"
        )
        banner = first.log.read_text()
        assert "1 partition" in banner and f"at exit in {data / 'snapshots'}/" in banner
        sent = statepump(
            "send",
            *(json.dumps({"op": "set", "path": f"markup/n{i}", "value": i}) for i in (3, 4, 2, 1)),
            data=data,
        )
        assert sent.stdout.split() == ["0", "1", "2", "3"], sent.stderr
        q = statepump("query", "markup", "--min-sequence", "3", "--compact", data=data)
        assert q.stdout == '{"n1": 1, "n2": 2, "n3": 3, "n4": 4}\n', q.stderr
        indented = statepump("query", "markup", data=data)
        assert indented.stdout.splitlines()[:3] == ["{", '  "n1": 1,', '  "n2": 2,']

        # A poison event (policy stop): the sidecar says once, plainly, that it is not ready and why.
        # JSON, but not an object: the config reducer cannot apply it (send refuses it unless --force).
        poison = statepump("send", "5", "--force", data=data)
        assert poison.stdout.split() == ["4"], poison.stderr
        line = _wait_for_line(first.log, "not serving as ready:")
        assert "ERROR statepump.pump: not serving as ready: poison event 4 on partition 0: " in line, line
        assert "must be a JSON object" in line, line
        assert line.endswith("serving sequence 3 (policy stop); `statepump skip 4 --reason ...` releases every node")
        assert first.log.read_text().count("poison event 4") == 1
        assert first.terminate() == 0
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
    written = _wait_for_line(first.log, "local snapshot at sequence 3 written")
    assert "00000000000000000003.snapshot" in written
    assert [p.name for p in (data / "snapshots" / "hub" / "0").iterdir()] == ["00000000000000000003.snapshot"]

    second = Sidecar(data, tmp_path / "run2.log")
    try:
        _wait_for_line(second.log, "snapshot loaded: snapshots/hub/0/00000000000000000003.snapshot (sequence 3")
        assert "no usable snapshot" not in second.log.read_text()
        # Stopped at the same poison event again: one short line, not the whole story (its dead letter is the marker).
        again = _wait_for_line(second.log, "still stopped at poison event 4 (first seen ")
        assert "see `statepump skip`" in again and "must be a JSON object" not in second.log.read_text()
        q = statepump("query", "markup", "--compact", data=data)
        assert q.stdout == '{"n1": 1, "n2": 2, "n3": 3, "n4": 4}\n', q.stderr
        assert second.terminate() == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()
            second.process.wait()
    assert "Traceback" not in first.log.read_text() + second.log.read_text()
