"""The gunicorn example with a relay-fed pump in every worker: reads are attribute reads of one version.

Each worker, after the fork, embeds a pump whose upstream is the node's
``statepump run`` sidecar over its Unix socket
(:func:`statepump.components.make_worker_pump`): it loads the sidecar's
snapshot, then follows its replication feed. No worker reads the hub (one
receiver for the whole node: the sidecar's), and no read crosses a socket or
decodes JSON: a request takes ``pump.version`` once and answers everything
from it, so two values read in one request always come from one version.

``app.py`` is the plain-socket variant (each worker asks the sidecar per
read), for apps in other languages and for states too large to hold once per
worker. ``config.py`` serves this one unless ``STATEPUMP_EXAMPLE_CLIENT=socket``.

Routes: ``GET /config/<path>`` (``?min_sequence=N&timeout=S``) with the
``Statepump-Sequence`` header, ``GET /pair/<a>/<b>`` (two values of one
version), and ``GET /readyz``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from examples.protocol import SEQUENCE_HEADER, BadQuery, refusal, wait_arguments
from statepump.core import statejson
from statepump.pump import Pump
from statepump.settings import load

#: The sidecar's socket: statepump's own setting (STATEPUMP_SOCKET or STATEPUMP_DATA_DIR/statepump.sock).
SOCKET_PATH = load({}).socket_path

_pump: Pump[Any] | None = None


def start_worker_pump() -> Pump[Any]:
    """This worker's pump, fed by the sidecar (called in ``post_fork``: a thread does not survive a fork)."""
    global _pump
    from statepump.components import make_worker_pump

    _pump = make_worker_pump(SOCKET_PATH)
    _pump.start_in_thread(name="statepump-worker")
    return _pump


def pump() -> Pump[Any]:
    return _pump if _pump is not None else start_worker_pump()


def _json(body: object, status: int = 200, sequence: int | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if sequence is not None and sequence >= 0:
        response.headers[SEQUENCE_HEADER] = str(sequence)
    return response


def _sequence(sequence: int) -> dict[str, str]:
    return {SEQUENCE_HEADER: str(sequence)}


app = Flask(__name__)


@app.get("/config/", defaults={"path": ""})
@app.get("/config/<path:path>")
def config_value(path: str) -> Response:
    try:
        min_sequence, timeout = wait_arguments(request.args.to_dict())
    except BadQuery as exc:
        return _json({"error": str(exc)}, 400)
    p = pump()
    if (why := refusal(p)) is not None:
        return _json({"error": f"not ready: {why}"}, 503)
    version = p.version  # one read: everything below answers from this version
    if min_sequence is not None and version.sequence < min_sequence:
        try:
            version = p.wait_for_sync(min_sequence, timeout=timeout)
        except TimeoutError:
            return _json({"error": f"sequence {min_sequence} not reached within {timeout:g} s"}, 504)
    value = statejson.walk(version.state, tuple(s for s in path.split("/") if s))
    if value is statejson.MISSING:
        return _json({"error": f"no value at path {path!r}", "path": path}, 404, version.sequence)
    return Response(statejson.encode(value), mimetype="application/json", headers=_sequence(version.sequence))


@app.get("/pair/<a>/<b>")
def pair(a: str, b: str) -> Response:
    version = pump().version
    values = [statejson.walk(version.state, (key,)) for key in (a, b)]
    body = {key: (None if v is statejson.MISSING else v) for key, v in zip((a, b), values, strict=True)}
    return Response(statejson.encode(body), mimetype="application/json", headers=_sequence(version.sequence))


@app.get("/readyz")
def readiness() -> Response:
    p = pump()
    if not p.ready:
        return _json({"ready": False, "reason": p.not_ready_reason}, 503)
    return _json({"ready": True, "sequence": p.version.sequence, "source": p.source.kind})
