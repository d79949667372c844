"""End to end: `statepump run` on its embedded defaults, `statepump send`, `statepump query`, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devservices import free_port

pytestmark = pytest.mark.emulator

EMULATED = "EntityPath=hub;UseDevelopmentEmulator=true"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STATEPUMP_")}


def statepump(
    *args: str, data: Path, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statepump", *args, "--data-dir", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
    )


class Sidecar:
    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        with open(log, "w") as stderr:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "statepump", "run", "--data-dir", str(data)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=_env(),
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"statepump run exited {self.process.returncode}:\n{self.log.read_text()}")
            if statepump("health", "--ready", data=self.data).returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail(f"statepump run was not ready within {timeout} s:\n{self.log.read_text()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    s = Sidecar(tmp_path / "data", tmp_path / "run.log")
    try:
        yield s
    finally:
        if s.process.poll() is None:
            s.process.kill()
            s.process.wait()


def test_run_send_query_and_restart(sidecar: Sidecar) -> None:
    sidecar.wait_ready()
    sent = statepump(
        "send",
        '{"op": "set", "path": "markup/tshirt", "value": 0.03}',
        '{"op": "set", "path": ["markup", "jeans"], "value": 0.1}',
        data=sidecar.data,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.split() == ["0", "1"]

    more = statepump(
        "send",
        data=sidecar.data,
        stdin='{"op": "delete", "path": "markup/tshirt"}\n{"op": "set", "path": "on", "value": true}\n',
    )
    assert more.stdout.split() == ["2", "3"], more.stderr

    q = statepump("query", "--min-sequence", "3", "--timeout", "30", data=sidecar.data)
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == {"markup": {"jeans": 0.1}, "on": True}

    missing = statepump("query", "markup/socks", data=sidecar.data)
    assert missing.returncode == 3 and "markup/socks" in missing.stderr

    socket_path = sidecar.data / "statepump.sock"
    assert socket_path.exists()
    assert sidecar.terminate() == 0
    assert not socket_path.exists()
    assert "Traceback" not in sidecar.log.read_text()

    # The embedded hub keeps its events under the data directory: a restart folds them again.
    again = Sidecar(sidecar.data, sidecar.log.with_name("run2.log"))
    try:
        again.wait_ready()
        q = statepump("query", data=sidecar.data)
        assert json.loads(q.stdout) == {"markup": {"jeans": 0.1}, "on": True}
    finally:
        assert again.terminate() == 0


def test_send_without_a_hub_says_how_to_get_one(tmp_path: Path) -> None:
    result = statepump("send", '{"op": "set", "path": "a", "value": 1}', data=tmp_path)
    assert result.returncode == 2
    assert "no embedded hub running: start `statepump run` first" in result.stderr
    bad = statepump("send", "{not json", data=tmp_path)
    assert bad.returncode == 2 and "event 1 is not valid JSON" in bad.stderr


def test_query_without_a_sidecar_exits_5(tmp_path: Path) -> None:
    result = statepump("query", "a", data=tmp_path)
    assert result.returncode == 5
    assert "statepump.sock" in result.stderr


def test_emulator_with_a_key_takes_only_that_key_and_never_logs_it(tmp_path: Path) -> None:
    key, port = "Emul4torK3y-never-logged", free_port()
    log = tmp_path / "emulator.log"
    with open(log, "w") as stderr:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "statepump", "emulator", "--port", str(port), "--in-memory", "--emulator-key", key],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_env(),
        )
    try:
        deadline = time.monotonic() + 60
        while "emulator ready" not in log.read_text():
            assert emulator.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # poll interval of the readiness condition
        hub = f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=RootManageSharedAccessKey;{EMULATED}"
        body = '{"op": "set", "path": "a", "value": 1}'
        right = statepump("send", "--connection-string", f"{hub};SharedAccessKey={key}", body, data=tmp_path)
        assert (right.returncode, right.stdout.split()) == (0, ["0"]), right.stderr
        wrong = statepump("send", "--connection-string", f"{hub};SharedAccessKey=not-{key}", body, data=tmp_path)
        assert wrong.returncode != 0
        assert "InvalidSignature" in wrong.stderr and key not in wrong.stderr
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)
    text = log.read_text()
    assert "SharedAccessKey=<the key it was given>" in text
    assert key not in text
