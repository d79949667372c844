"""Azurite, the Azure Storage emulator (its Blob service), on a free loopback port.

Azurite comes from npm: :func:`azurite_blob_binary` installs it into
``<repo>/.tools/azurite`` (git-ignored) the first time it is needed; a file
lock keeps parallel processes from installing it twice. Without Node.js and
npm it raises :class:`devservices.Unavailable`.

:class:`AzuriteProcess` starts one Azurite, in memory or persisting to a
directory, in a process group of its own; :meth:`AzuriteProcess.stop` ends
that group by the leader's PID (SIGTERM, then SIGKILL if it lingers, and
SIGKILL again for children node may leave behind), so nothing outlives it.
Nothing here ever contacts an address other than 127.0.0.1::

    proc = AzuriteProcess(location=None)
    info = proc.start(retry_port=True)   # info.connection_string
    try:
        ...
    finally:
        proc.stop()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devservices import Unavailable, free_port

#: Azurite 3.37.0 implements Blob API version 2026-06-06; azure-storage-blob
#: 12.31 speaks 2026-10-06 by default, hence ``--skipApiVersionCheck`` (the
#: requests it makes are all older operations that Azurite does implement).
AZURITE_VERSION = "3.37.0"

#: The fixed, publicly documented development account of every Azure Storage
#: emulator; it is not a secret.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = REPO_ROOT / ".tools"
INSTALL_DIR = TOOLS_DIR / "azurite"

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 10.0
INSTALL_DEADLINE_S = 600.0


@dataclass(frozen=True)
class Azurite:
    """How to reach one running Azurite."""

    port: int
    blob_endpoint: str
    connection_string: str
    account_name: str = ACCOUNT_NAME
    account_key: str = ACCOUNT_KEY


def _installed_version() -> str | None:
    package = INSTALL_DIR / "node_modules" / "azurite" / "package.json"
    try:
        version = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def azurite_blob_binary() -> Path:
    """The ``azurite-blob`` executable, installed from npm on first use.

    Raises :class:`devservices.Unavailable` without Node.js and npm, or when
    the install fails.
    """
    binary = INSTALL_DIR / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists() and _installed_version() == AZURITE_VERSION:
        return binary
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise Unavailable(
            f"Azurite tests need {' and '.join(missing)}: install Node.js 18+ with npm "
            "(e.g. `apt-get install nodejs npm`)"
        )
    TOOLS_DIR.mkdir(exist_ok=True)
    with open(TOOLS_DIR / "azurite.lock", "w") as lock:
        # Parallel processes queue here; the first installs, the rest find it done.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (binary.exists() and _installed_version() == AZURITE_VERSION):
                result = subprocess.run(
                    [
                        "npm",
                        "install",
                        "--prefix",
                        str(INSTALL_DIR),
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                        f"azurite@{AZURITE_VERSION}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_DEADLINE_S,
                    check=False,
                )
                if result.returncode != 0 or not binary.exists():
                    tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
                    raise Unavailable(
                        f"`npm install azurite@{AZURITE_VERSION}` into {INSTALL_DIR} failed "
                        f"(exit {result.returncode}): {' | '.join(tail)}"
                    )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return binary


def _answers(port: int) -> bool:
    # Any HTTP reply (even 403 for an unsigned request) means Azurite is serving.
    url = f"http://127.0.0.1:{port}/{ACCOUNT_NAME}?comp=list"
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


class AzuriteProcess:
    """One Azurite blob service that can be stopped and started again.

    With ``location`` set, data lives in that directory and survives a
    restart; without it, Azurite keeps everything in memory. For example::

        proc = AzuriteProcess(location=tmp_path)
        info = proc.start()      # info.connection_string
        proc.stop(); proc.start()  # same port, same data
        proc.stop()
    """

    def __init__(self, location: Path | None, port: int | None = None, log_path: Path | None = None) -> None:
        self.location = location
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def info(self) -> Azurite:
        endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"
        return Azurite(
            port=self.port,
            blob_endpoint=endpoint,
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
                f"AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
            ),
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self) -> list[str]:
        command = [
            str(azurite_blob_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
            "--silent",
        ]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        return command

    def _log_tail(self) -> str:
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-5:])
        return ""

    def start(self, *, retry_port: bool = False) -> Azurite:
        """Start Azurite and return once it answers HTTP on its port.

        ``retry_port`` lets a first start move to another free port if this
        one was taken in the meantime; a restart keeps its port.
        """
        if self.running:
            return self.info
        for attempt in range(3):
            with contextlib.ExitStack() as files:
                log = files.enter_context(open(self.log_path, "ab")) if self.log_path else subprocess.DEVNULL
                proc = self._proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # its own process group, killed as a whole in stop()
                    cwd=self.location or TOOLS_DIR,
                )
            deadline = time.monotonic() + START_DEADLINE_S
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _answers(self.port):
                    return self.info
                time.sleep(0.05)  # poll interval while waiting for the port to answer
            exited = proc.poll() is not None
            self.stop()
            if exited and retry_port and attempt < 2:
                self.port = free_port()
                continue
            reason = "exited" if exited else f"did not answer within {START_DEADLINE_S:.0f}s"
            raise RuntimeError(f"Azurite on 127.0.0.1:{self.port} {reason}: {self._log_tail()}")
        raise AssertionError("unreachable")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop Azurite's whole process group; SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_DEADLINE_S)
        # node may leave children in the group after the leader exits.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> Azurite:
        """Stop and start again on the same port with the same data."""
        self.stop()
        return self.start()


__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_VERSION",
    "Azurite",
    "AzuriteProcess",
    "azurite_blob_binary",
]
