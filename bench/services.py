"""Services the figures start and stop themselves: PostgreSQL, Azurite (the emulator: ``bench.hub_throughput``).

Starting them is :mod:`devservices`' job; here each is a context manager
that turns :class:`devservices.Unavailable` (a tool that is not installed)
into :class:`~bench.figure.ServiceUnavailable`, with one line naming what to
install, so that the figure is reported as not run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import devservices.postgres
from bench.figure import ServiceUnavailable
from devservices import Unavailable
from devservices.azurite import AzuriteProcess

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (:func:`devservices.postgres.cluster`); yields a psycopg conninfo."""
    with contextlib.ExitStack() as stack:
        try:
            conninfo = stack.enter_context(devservices.postgres.cluster())
        except Unavailable as exc:
            raise ServiceUnavailable(f"figure 1: {exc}") from None
        yield conninfo


@contextlib.contextmanager
def azurite() -> Iterator[str]:
    """An in-memory Azurite on a free loopback port (:mod:`devservices.azurite`); yields its connection string."""
    process = AzuriteProcess(None)
    try:
        info = process.start()
    except Unavailable as exc:  # no Node.js, or npm could not install Azurite
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
