"""The commands that ask a running sidecar: ``statepump query`` and ``statepump health``.

They are thin: a :class:`statepump.client.Client` call, and the client's
errors turned into exit codes a shell script or a Kubernetes exec probe can
branch on (the ``EXIT_*`` constants). :mod:`statepump.cli` parses the flags
and calls them; they are functions of their own so tests can run them
without a subprocess.

>>> query_command("/nonexistent/statepump.sock", "markup/tshirt") == EXIT_NO_SIDECAR
True
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from statepump.client import Client, NotReady, PathNotFound, SidecarError, SidecarUnavailable, Timeout

#: Exit codes of :func:`query_command` and :func:`health_command`.
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_PATH_MISSING: Final = 3
EXIT_NOT_READY: Final = 4
EXIT_NO_SIDECAR: Final = 5


def query_command(
    socket_path: str | Path,
    path: str = "",
    min_sequence: int | None = None,
    timeout: float | None = None,
    *,
    compact: bool = False,
) -> int:
    """``statepump query``: print the JSON value at ``path``; returns the exit code.

    The value is printed for people: keys sorted, indented (``compact``: on
    one line). The socket API keeps the state's own order (no sort per request).

    Exit codes: 0 printed; 3 no value at the path; 4 not ready, or
    ``min_sequence`` not reached within ``timeout``; 5 no sidecar on the
    socket; 1 anything else (the message is on stderr).
    """
    try:
        with Client(socket_path) as client:
            value = client.get(path, min_sequence=min_sequence, timeout=timeout)
    except PathNotFound as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_PATH_MISSING
    except (NotReady, Timeout) as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except SidecarUnavailable as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_NO_SIDECAR
    except (SidecarError, ValueError) as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(format_value(value, compact=compact))
    return EXIT_OK


def format_value(value: object, *, compact: bool = False) -> str:
    """JSON for a terminal: sorted keys, indented or (``compact``) on one line.

    >>> print(format_value({"n3": 3, "n1": {"b": 2, "a": 1}}, compact=True))
    {"n1": {"a": 1, "b": 2}, "n3": 3}
    >>> print(format_value({"b": 1, "a": 2}))
    {
      "a": 2,
      "b": 1
    }
    """
    if compact:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def health_command(socket_path: str | Path, ready: bool = False) -> int:
    """``statepump health [--ready]``: the exit code of a Kubernetes exec probe.

    Without ``ready`` (liveness): 0 when the sidecar answers ``/healthz``.
    With ``ready`` (readiness): 0 only when ``/readyz`` answers 200, else 4
    with the reason on stderr. 5 when no sidecar answers on the socket.
    """
    try:
        with Client(socket_path, timeout=5.0) as client:
            if not ready:
                return EXIT_OK if client.alive() else EXIT_ERROR
            reason = client.ready_reason()
    except (SidecarUnavailable, Timeout) as exc:
        print(f"statepump health: {exc}", file=sys.stderr)
        return EXIT_NO_SIDECAR
    except SidecarError as exc:
        print(f"statepump health: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if reason is not None:
        print(f"statepump health: not ready: {reason}", file=sys.stderr)
        return EXIT_NOT_READY
    return EXIT_OK
