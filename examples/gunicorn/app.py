"""A small WSGI app (Flask) whose gunicorn workers read the configuration from the ``statepump run`` sidecar.

No worker embeds a pump: one sidecar per host (or pod) holds the state once,
and each worker asks it over the Unix socket through its own
:class:`statepump.client.Client`. A client holds a socket, and a socket must
not be shared by forked processes, so each worker creates its client after
the fork (:func:`connect_sidecar`, called by ``post_fork`` in
``examples/gunicorn/config.py``). A sync worker serves one request at a time,
which is what a (not thread-safe) client allows.

The socket path is statepump's own setting: ``STATEPUMP_SOCKET`` (or
``STATEPUMP_DATA_DIR``/statepump.sock, or the ``socket`` key of
``STATEPUMP_CONFIG``'s TOML file), the same one ``statepump run`` reads.

Routes: ``GET /config/<path>`` (``?min_sequence=N&timeout=S``) with the
``Statepump-Sequence`` header, and ``GET /readyz``. Each answer comes from one
version of the state: values that must agree belong under one path and are
read with one request.

Run (see examples/README.md)::

    STATEPUMP_SOCKET=/tmp/statepump.sock statepump run &
    STATEPUMP_SOCKET=/tmp/statepump.sock gunicorn -c examples/gunicorn/config.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, request

from examples.protocol import SEQUENCE_HEADER, BadQuery, wait_arguments
from statepump.client import Client, NotReady, PathNotFound, SidecarUnavailable, Timeout
from statepump.settings import load

#: Read once in the master (with ``preload_app``) or the worker; reading settings opens no socket.
SOCKET_PATH: Path = load({}).socket_path

_client: Client | None = None
_client_pid = 0


def connect_sidecar() -> Client:
    """Give this process its own client of the sidecar (gunicorn calls this in ``post_fork``)."""
    global _client, _client_pid
    _client = Client(SOCKET_PATH, timeout=5.0)
    _client_pid = os.getpid()
    return _client


def sidecar() -> Client:
    """This process's client; made here if no ``post_fork`` hook made one (e.g. under ``flask run``)."""
    if _client is None or _client_pid != os.getpid():
        return connect_sidecar()
    return _client


def _json(body: object, status: int = 200, sequence: int | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if sequence is not None and sequence >= 0:
        response.headers[SEQUENCE_HEADER] = str(sequence)
    return response


app = Flask(__name__)


@app.get("/config/", defaults={"path": ""})
@app.get("/config/<path:path>")
def config_value(path: str) -> Response:
    try:
        min_sequence, timeout = wait_arguments(request.args.to_dict())
    except BadQuery as exc:
        return _json({"error": str(exc)}, 400)
    try:
        value, sequence = sidecar().get_with_sequence(
            path, min_sequence=min_sequence, timeout=timeout if min_sequence is not None else None
        )
    except PathNotFound as exc:
        return _json({"error": str(exc), "path": path, "sequence": exc.sequence}, 404, exc.sequence)
    except Timeout as exc:
        return _json({"error": str(exc), "min_sequence": min_sequence}, 504)
    except (NotReady, SidecarUnavailable) as exc:
        return _json({"error": str(exc)}, 503)
    return _json(value, 200, sequence)


@app.get("/readyz")
def readiness() -> Response:
    try:
        reason = sidecar().ready_reason()
    except (SidecarUnavailable, Timeout) as exc:
        return _json({"ready": False, "reason": str(exc)}, 503)
    if reason is not None:
        return _json({"ready": False, "reason": reason}, 503)
    return _json({"ready": True})
