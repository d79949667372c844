"""Services the figures start and stop themselves: PostgreSQL, Azurite, the emulator.

Each is a context manager; when one cannot be had it raises
:class:`~bench.figure.ServiceUnavailable` with one line naming what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.figure import ServiceUnavailable

ROOT = Path(__file__).resolve().parents[1]


def _postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise ServiceUnavailable("figure 1 needs PostgreSQL's server binaries: apt-get install postgresql")
    return candidates[-1]


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a Unix socket in a temp directory; yields a psycopg conninfo.

    As root, the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root).
    """
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    run_as: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable(
                "figure 1 runs PostgreSQL as user 'postgres' when root: apt-get install postgresql"
            ) from None
        run_as, user = ["runuser", "-u", "postgres", "--"], "postgres"
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        data, sock = Path(tmp) / "data", Path(tmp) / "sock"
        sock.mkdir()
        if run_as:
            for path in (Path(tmp), sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-k {sock} -c listen_addresses='' -c fsync=off -c shared_buffers=256MB"
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(Path(tmp) / "log"), "start"],
            check=True,
            capture_output=True,
        )
        try:
            yield f"host={sock} user={user} dbname=postgres"
        finally:
            subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)


@contextlib.contextmanager
def azurite() -> Iterator[str]:
    """An in-memory Azurite on a free loopback port (``tests/fixtures/azurite.py``); yields its connection string."""
    try:
        import pytest

        from tests.fixtures.azurite import AzuriteProcess
    except ImportError as exc:
        why = f"figure 1 needs the test extras for Azurite: pip install -e '.[test]' ({exc})"
        raise ServiceUnavailable(why) from None
    process = AzuriteProcess(None)
    try:
        info = process.start()
    except pytest.fail.Exception as exc:  # the helper reports a missing Node.js this way
        raise ServiceUnavailable(f"figure 1: {str(exc).splitlines()[0]}") from None
    try:
        yield info.connection_string
    finally:
        process.stop()


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` until true; raise naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)
