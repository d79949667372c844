"""A server under test in a subprocess (a web app, gunicorn, ``statepump run``), and polling with deadlines.

Every process starts in a session of its own, so :meth:`Served.stop` reaches
its children too (gunicorn's workers); the fixtures stop every one they start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: Environment variables a subprocess must not inherit: statepump settings of
#: whoever runs the tests, proxies (everything here is loopback), and gunicorn's
#: PORT, which would make it bind 0.0.0.0.
_DROPPED = ("PORT", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEPUMP_") and k not in _DROPPED}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def eventually(check: Callable[[], T], *, timeout: float = 30.0, what: str = "the condition") -> T:
    """``check()``'s result once it stops raising ``AssertionError`` or a connection error; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, httpx.TransportError) as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} did not hold within {timeout:g} s: {exc!r}") from exc
        time.sleep(0.05)  # poll interval of the condition, not a wait for it


class ProcessExited(RuntimeError):
    """A server under test exited."""


class Served:
    """One server subprocess, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = [sys.executable, *argv]
        self.env = clean_environment(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def assert_running(self) -> None:
        """Raise :class:`ProcessExited` (not an ``AssertionError``: polling must not wait on a dead process)."""
        if not self.running():
            code = self.process.returncode if self.process is not None else None
            raise ProcessExited(f"{self.name} is not running (exit status {code}):\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        # Children (gunicorn workers) may outlive a killed parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)


def http_client(base_url: str) -> httpx.Client:
    # trust_env=False: no proxy from the environment between us and loopback.
    return httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)


def wait_until_ready(served: Served, client: httpx.Client, timeout: float = 60.0) -> None:
    """Poll ``/readyz`` until 200, failing early with the log if the process died."""

    def ready() -> None:
        served.assert_running()
        response = client.get("/readyz")
        assert response.status_code == 200, response.text

    eventually(ready, timeout=timeout, what=f"{served.name} ready")
