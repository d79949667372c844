"""The local services that tests and benchmarks start for real, with no test framework.

* :mod:`devservices.azurite`: Azurite, the Azure Storage emulator, installed
  from npm into ``.tools/`` on first use;
* :mod:`devservices.emulator`: the bundled Event Hubs emulator in a process of
  its own (``python -m statepump.emulator``);
* :mod:`devservices.postgres`: a throw-away PostgreSQL cluster (bench figure 1's anchor);
* :mod:`devservices.redis`: ``redis-server`` on a Unix socket (bench figure 5's anchor).

What they all keep to: they listen on loopback only, on ports that were free
(:func:`free_port`) or on Unix sockets; each service is one process (or one
process group) that is stopped by its PID, never by a name. A tool that is
not installed raises :class:`Unavailable` with one line saying what to
install: the pytest fixtures (``tests/fixtures/``) turn it into a test
failure, the benchmarks (``bench/``) into a figure that says it was not run.

This package is for development only: it is not in the statepump wheel.
"""

from __future__ import annotations

import socket


class Unavailable(RuntimeError):
    """A service cannot be started here: a tool it needs is missing. The message says what to install."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


__all__ = ["Unavailable", "free_port"]
