"""A throw-away PostgreSQL cluster on a Unix socket in a temporary directory (no TCP port at all).

:func:`cluster` runs ``initdb`` into a temporary directory and starts the
server with ``pg_ctl`` (``listen_addresses=''``, fsync off); when the block
ends, ``pg_ctl stop -m fast`` stops it by the PID in its data directory's
``postmaster.pid``, and the directory is removed. As root the cluster runs as
the ``postgres`` user, since PostgreSQL refuses to run as root::

    with cluster() as conninfo:
        with psycopg.connect(conninfo) as conn:
            ...

Without the server binaries (Debian's ``postgresql`` package), or as root
without a ``postgres`` user, it raises :class:`devservices.Unavailable`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devservices import Unavailable


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise Unavailable(f"PostgreSQL's server binaries ({name}) are not installed: apt-get install postgresql")
    return candidates[-1]


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A running cluster for the length of the block; yields a psycopg conninfo (database ``postgres``)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    run_as: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable(
                "as root, PostgreSQL runs as user 'postgres', and there is none: apt-get install postgresql"
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


__all__ = ["cluster"]
