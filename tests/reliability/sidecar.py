"""Driving ``statepump run`` as a real process, and polling conditions with deadlines.

The fault tests treat statepump the way a user does: a process started with
flags, observed through its socket API (``/v1/status``, ``/readyz``,
``/metrics``), its log and its exit code.

Example::

    with Sidecar(["--connection-string", hub.connection_string], tmp_path) as car:
        car.wait_ready()
        assert car.status()["sequence"] == 9
        assert car.terminate() == 0
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

#: How often a condition is re-checked while a test waits for it.
POLL_INTERVAL = 0.05


def poll_until(
    condition: Callable[[], T | None], timeout: float, what: str, *, on_timeout: Callable[[], str] = str
) -> T:
    """Re-evaluate ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}. {on_timeout()}")
        time.sleep(POLL_INTERVAL)  # the poll interval of a condition, not a wait standing in for it


def clean_environment() -> dict[str, str]:
    """The test's environment without any ``STATEPUMP_*`` variable of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STATEPUMP_")}


REPO = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` as a user runs it: a clean environment, the repository importable
    (a test's own reducer module), no terminal on stdin, output captured, the exit code not checked."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean_environment(), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("statepump", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


def http_get(socket_path: Path, target: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on the sidecar's Unix socket: status, headers, body."""
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Sidecar:
    """``python -m statepump run`` with the given flags, its socket and log under ``workdir``."""

    def __init__(self, flags: Sequence[str], workdir: Path, *, name: str = "run", env: dict[str, str] | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.socket = workdir / f"{name}.sock"
        self.log_path = workdir / f"{name}.log"
        self.out_path = workdir / f"{name}.out"
        self.command = [
            sys.executable,
            "-m",
            "statepump",
            "run",
            "--data-dir",
            str(workdir / "data"),
            "--socket",
            str(self.socket),
            *flags,
        ]
        with open(self.log_path, "wb") as log, open(self.out_path, "wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=log, env=env or clean_environment(), start_new_session=True
            )

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.kill()

    # --- observing ---------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def describe(self) -> str:
        code = self.process.poll()
        return f"statepump run {'is running' if code is None else f'exited {code}'}; log tail:\n{self.log()[-3000:]}"

    def get(self, target: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.socket, target, timeout)

    def status(self) -> dict[str, Any]:
        code, _, body = self.get("/v1/status")
        assert code == 200, body
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def state(self, path: str = "") -> Any:
        code, _, body = self.get(f"/v1/state/{path}" if path else "/v1/state")
        assert code == 200, body
        return json.loads(body)

    def metrics(self) -> str:
        code, _, body = self.get("/metrics")
        assert code == 200
        return body.decode()

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(self.describe())
        try:
            return self.get("/healthz", timeout=2.0)[0] == 200
        except OSError:
            return False

    def ready(self) -> bool:
        return self.answers() and self.get("/readyz")[0] == 200

    def wait(self, condition: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
        return poll_until(condition, timeout, what, on_timeout=self.describe)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        self.wait(self.ready, "the sidecar to be ready", timeout)
        return self.status()

    def wait_status(
        self, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if not self.answers():
                return None
            status = self.status()
            return status if condition(status) else None

        return self.wait(check, what, timeout)

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"statepump run did not exit within {timeout:.0f} s. {self.describe()}") from None

    # --- ending ------------------------------------------------------------------------

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
