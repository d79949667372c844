"""The bundled Event Hubs emulator in a process of its own (``python -m statepump.emulator``), on loopback.

:class:`EmulatorProcess` runs the emulator as ``statepump emulator`` would,
in a process group of its own, and returns from :meth:`~EmulatorProcess.start`
once the official SDK gets an answer to a management READ.
:meth:`~EmulatorProcess.kill` (SIGKILL) and :meth:`~EmulatorProcess.stop`
(SIGTERM, then SIGKILL after 10 s) end that group by its PID; ``start()``
again comes back on the same port with the same data directory, which is what
fault tests need::

    hub = EmulatorProcess.on_free_ports(log_path, data_dir, partitions=1)
    hub.start()
    try:
        ...  # EventHubProducerClient.from_connection_string(hub.connection_string)
    finally:
        hub.stop()

For an emulator inside the test's own event loop, use
:class:`statepump.emulator.Emulator` directly.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azure.eventhub import EventHubProducerClient

from devservices import free_port
from statepump.emulator.emulator import KEY, KEY_NAME

#: A ``log_path`` that keeps nothing.
NO_LOG = Path(os.devnull)


def connection_string(port: int, eventhub: str = "hub") -> str:
    """The SDK's connection string for an emulator on ``127.0.0.1:port``.

    >>> connection_string(5672).startswith("Endpoint=sb://127.0.0.1:5672/;")
    True
    """
    return (
        f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName={KEY_NAME};"
        f"SharedAccessKey={KEY};EntityPath={eventhub};UseDevelopmentEmulator=true"
    )


def _management_read(connection_string: str) -> bool:
    try:
        client = EventHubProducerClient.from_connection_string(connection_string, retry_total=0)
        with client:
            client.get_eventhub_properties()
        return True
    except Exception:
        return False


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class EmulatorProcess:
    """An emulator in a subprocess that a fault test may kill and restart.

    ``args`` are the emulator's command-line arguments (they must include
    ``--port`` with ``port``); its output is appended to ``log_path``
    (:data:`NO_LOG` for none).
    """

    def __init__(self, args: list[str], port: int, admin_port: int | None, log_path: Path) -> None:
        self.args = args
        self.port = port
        self.admin_port = admin_port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_free_ports(
        cls,
        log_path: Path = NO_LOG,
        data_dir: Path | None = None,
        *,
        partitions: int = 2,
        retention: float | None = None,
        admin: bool = False,
        capture_dir: Path | None = None,
        capture_interval: float | None = None,
        extra: Sequence[str] = (),
    ) -> EmulatorProcess:
        """An emulator (not started yet) on a free port, with its admin endpoint on another if ``admin``.

        Events are kept under ``data_dir``, or in memory without it; ``extra`` are more flags of
        ``python -m statepump.emulator`` (``["--consumer-group", "web-{1..3}", "--throughput-units", "1"]``).
        """
        port = free_port()
        admin_port = free_port() if admin else None
        args = ["--port", str(port), "--partitions", str(partitions)]
        args += ["--data", str(data_dir)] if data_dir is not None else ["--in-memory"]
        if retention is not None:
            args += ["--retention", str(retention)]
        if admin_port is not None:
            args += ["--admin-port", str(admin_port)]
        if capture_dir is not None:
            args += ["--capture-dir", str(capture_dir)]
        if capture_interval is not None:
            args += ["--capture-interval", str(capture_interval)]
        return cls([*args, *extra], port, admin_port, log_path)

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self, timeout: float = 30.0) -> None:
        """Start (again) and wait until a management READ succeeds."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the emulator process is already running")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "statepump.emulator", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}: {self.log()}")
            if _accepting(self.port) and _management_read(self.connection_string):
                return
            time.sleep(0.05)  # poll interval of the readiness condition, not a wait for it
        self.kill()
        raise TimeoutError(f"the emulator was not ready within {timeout}s: {self.log()}")

    def receivers(self, partition: str = "0") -> dict[str, int]:
        """Receivers per consumer group on ``partition``, from the admin endpoint (groups with none left out)."""
        answer = self._partition(partition)
        return {group: n for group, n in answer["receivers"].items() if n}

    def egress(self, partition: str = "0") -> dict[str, dict[str, int]]:
        """Events and bytes the hub delivered on ``partition`` since its start, by consumer group (admin endpoint)."""
        egress: dict[str, dict[str, int]] = self._partition(partition)["egress"]
        return egress

    def _partition(self, partition: str) -> dict[str, Any]:
        if self.admin_port is None:
            raise RuntimeError("this emulator was started without an admin endpoint (admin=True)")
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            connection.request("GET", f"/partitions/{partition}")
            answer: dict[str, Any] = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        return answer

    def log(self) -> str:
        """The end of the emulator's output."""
        return self.log_path.read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, as a user's Ctrl-C; waits for a clean exit."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


__all__ = ["NO_LOG", "EmulatorProcess", "connection_string"]
