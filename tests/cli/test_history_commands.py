"""Issue 17 end to end, as processes: `statepump log`, `watch`, `diff`, `query --at-sequence`, `snapshot inspect`.

One `statepump run` on its embedded hub (restarted once); `log --follow` and
`watch` run beside it, see a change, see the sidecar go and come back, and stop
on SIGINT.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from statepump.core import statejson
from statepump.core.changes import diff
from statepump.core.configops import config
from statepump.core.fold import fold
from statepump.stores.snapshots import initial_version
from tests.cli.test_run_send import Sidecar, _env, statepump
from tests.core.strategies import events_from

pytestmark = pytest.mark.emulator

PATHS = ["markup/tshirt", "markup/hat", "limits/rps", "flags/dark"]


def bodies(n: int) -> list[str]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        path = rng.choice(PATHS)
        if rng.random() < 0.1:
            out.append(json.dumps({"op": "delete", "path": path}))
        else:
            out.append(json.dumps({"op": "set", "path": path, "value": i}))
    return out


def replay(sent: list[str], through: int) -> Any:
    events = events_from([b.encode() for b in sent[: through + 1]])
    return fold(initial_version(config, "0"), events, config, applied_at=events[0].enqueued_time).version.state


def poll_until(condition: Callable[[], bool], what: str, timeout: float = 30, *show: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            seen = "".join(f"\n--- {p.name}:\n{p.read_text()}" for p in show)
            pytest.fail(f"not within {timeout} s: {what}{seen}")
        time.sleep(0.05)


def follower(*args: str, data: Path, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "w") as stdout, open(out.with_suffix(".err"), "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "statepump", *args, "--data-dir", str(data)],
            stdout=stdout,
            stderr=stderr,
            env=_env(),
        )


def inspect(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "statepump", "snapshot", "inspect", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=_env())


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_log_diff_and_time_travel_over_5000_events(tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path / "data", tmp_path / "run.log")
    try:
        sidecar.wait_ready()
        sent = bodies(5000)
        result = statepump(
            "send",
            "--force",
            "--property",
            "statepump-author=ci",
            data=sidecar.data,
            stdin="\n".join(sent) + "\n",
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "4999"
        assert statepump("query", "--min-sequence", "4999", "--timeout", "60", data=sidecar.data).returncode == 0

        log = statepump("log", "markup", "--limit", "5000", "--json", data=sidecar.data)
        assert log.returncode == 0, log.stderr
        entries = [json.loads(x) for x in log.stdout.splitlines()]
        want = [i for i, b in enumerate(sent) if json.loads(b)["path"].startswith("markup/")]
        assert [e["sequence"] for e in entries] == want  # oldest first, exactly the changes to markup
        assert {e["author"] for e in entries} == {"ci"}
        text = statepump("log", "limits/rps", "--limit", "2", data=sidecar.data)
        last_two = [i for i, b in enumerate(sent) if json.loads(b)["path"] == "limits/rps"][-2:]
        assert [int(x.split()[0]) for x in text.stdout.splitlines()] == last_two

        # Offline: no sidecar is asked, the embedded hub is read again.
        q = statepump("query", "markup", "--at-sequence", "1234", "--compact", data=sidecar.data, timeout=120)
        assert q.returncode == 0, q.stderr
        assert json.loads(q.stdout) == json.loads(statejson.encode(replay(sent, 1234)["markup"]))
        d = statepump("diff", "--from", "100", "--to", "4000", "--json", data=sidecar.data, timeout=120)
        assert d.returncode == 0, d.stderr
        expected = [c.as_json() for c in diff(replay(sent, 100), replay(sent, 4000))]
        assert json.loads(d.stdout)["changes"] == json.loads(statejson.encode(expected))
        bad = statepump("query", "--at-sequence", "99999", data=sidecar.data, timeout=120)
        assert bad.returncode == 1
        assert (
            bad.stderr.strip().splitlines()[-1]
            == "statepump query: sequence 99999 is not in the hub yet: its last event is 4999"
        )
    finally:
        sidecar.terminate()
    # The embedded sidecar writes a snapshot when it stops.
    [snapshot] = sorted((sidecar.data / "snapshots").rglob("*.snapshot"))[-1:]
    shown = inspect(str(snapshot), "--state", "markup", "--compact")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == json.loads(statejson.encode(replay(sent, 4999)["markup"]))
    missing = inspect(str(snapshot), "--state", "nope")
    assert missing.returncode == 3 and "nope" in missing.stderr


def test_follow_and_watch_survive_a_restart_and_stop_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sidecar = Sidecar(data, tmp_path / "run.log")
    followers: list[subprocess.Popen[bytes]] = []
    try:
        sidecar.wait_ready()
        statepump("send", '{"op": "set", "path": "markup/tshirt", "value": 1}', data=data)
        log_out, watch_out = tmp_path / "log.out", tmp_path / "watch.out"
        followers.append(follower("log", "markup", "--follow", "--json", data=data, out=log_out))
        followers.append(follower("watch", "markup/tshirt", data=data, out=watch_out))
        poll_until(lambda: len(lines(log_out)) == 1 and len(lines(watch_out)) == 1, "the current state printed")
        assert json.loads(lines(watch_out)[0]) == {"sequence": 0, "path": "markup/tshirt", "value": 1}

        statepump("send", '{"op": "set", "path": "markup/tshirt", "value": 2}', data=data)
        statepump("send", '{"op": "set", "path": "other", "value": 2}', data=data)  # neither prints this one
        poll_until(lambda: len(lines(log_out)) == 2 and len(lines(watch_out)) == 2, "the change printed")

        assert sidecar.terminate() == 0
        poll_until(lambda: "reconnecting" in log_out.with_suffix(".err").read_text(), "log says it reconnects")
        poll_until(lambda: "reconnecting" in watch_out.with_suffix(".err").read_text(), "watch says it reconnects")
        sidecar = Sidecar(data, tmp_path / "run2.log")
        sidecar.wait_ready()
        sent = statepump("send", '{"op": "delete", "path": "markup/tshirt"}', data=data)
        assert sent.returncode == 0, sent.stderr
        outputs = (log_out, log_out.with_suffix(".err"), watch_out, watch_out.with_suffix(".err"))
        three = lambda: len(lines(log_out)) == 3 and len(lines(watch_out)) == 3  # noqa: E731
        poll_until(three, "the change after the restart", 30, *outputs)
        assert [json.loads(x)["sequence"] for x in lines(log_out)] == [0, 1, 3]
        assert [json.loads(x) for x in lines(watch_out)][1:] == [
            {"sequence": 1, "path": "markup/tshirt", "value": 2},
            {"sequence": 3, "path": "markup/tshirt", "value": None},
        ]
        for process in followers:
            process.send_signal(signal.SIGINT)
        for process, out in zip(followers, (log_out, watch_out), strict=True):
            assert process.wait(timeout=10) == 130
            assert "Traceback" not in out.with_suffix(".err").read_text()
    finally:
        for process in followers:
            if process.poll() is None:
                process.kill()
                process.wait()
        if sidecar.process.poll() is None:
            sidecar.terminate()
