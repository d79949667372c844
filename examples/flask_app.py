"""A Flask app that embeds the pump: the configuration is a Python attribute read.

The pump runs on a background thread, started once per process by the app
factory. Each request takes ``v = pump.version`` once and reads only
``v.state`` after that: the pump swaps in new versions between batches, so
two reads of ``pump.state`` in one request could see two different versions.

Run it against a local emulator (see examples/README.md)::

    export STATEPUMP_CONNECTION_STRING='Endpoint=sb://127.0.0.1:5672/;...'   # what `statepump emulator` prints
    flask --app examples.flask_app run

Routes:

* ``GET /config/<path>``: the JSON value at ``path`` (``/config/``: everything), with the
  ``Statepump-Sequence`` header naming the version it was read from; 404 if nothing is there.
  ``?min_sequence=N&timeout=S`` waits (at most S seconds, 504 after) until event N is applied:
  read-your-writes for a writer that got N back from ``statepump send``.
* ``GET /quote/<item>``: ``prices/<item>`` and its markup, both from one version.
* ``GET /readyz``: 200 once caught up with the hub, 503 with the reason before or after a stop.
"""

from __future__ import annotations

import atexit
import json
from typing import Any

from flask import Flask, Response, request

from examples.pricing import NoPrice, PricingError, quote_from
from examples.protocol import SEQUENCE_HEADER, BadQuery, refusal, wait_arguments
from examples.pump_settings import hub_settings
from statepump.components import make_pump
from statepump.core.events import Version
from statepump.core.statejson import MISSING, encode, walk
from statepump.pump import Pump
from statepump.settings import Settings


def _json(body: object, status: int = 200, version: Version[Any] | None = None) -> Response:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = Response(payload, status=status, mimetype="application/json")
    if version is not None:
        response.headers[SEQUENCE_HEADER] = str(version.sequence)
    return response


def create_app(settings: Settings | None = None) -> Flask:
    """The app, with its own pump started on a background thread (``flask run`` calls this once).

    Example::

        app = create_app()
        app.run(host="127.0.0.1", port=8000)
    """
    pump: Pump[Any] = make_pump(settings or hub_settings())
    pump.start_in_thread()
    # Close the hub connection cleanly when the process exits (Ctrl-C of `flask run`).
    atexit.register(pump.stop_in_thread)

    app = Flask(__name__)
    app.extensions["statepump"] = pump

    @app.before_request
    def refuse_while_unusable() -> Response | None:
        if request.path == "/readyz":
            return None
        reason = refusal(pump)
        if reason is None:
            return None
        return _json({"error": f"not ready: {reason}", "reason": reason}, 503)

    @app.get("/config/", defaults={"path": ""})
    @app.get("/config/<path:path>")
    def config_value(path: str) -> Response:
        try:
            min_sequence, timeout = wait_arguments(request.args.to_dict())
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        if min_sequence is None:
            v = pump.version
        else:
            try:
                v = pump.wait_for_sync(min_sequence, timeout)
            except TimeoutError:
                return _json(
                    {
                        "error": f"event {min_sequence} was not applied within {timeout:g} s",
                        "min_sequence": min_sequence,
                    },
                    504,
                    pump.version,
                )
        value = walk(v.state, [s for s in path.split("/") if s])
        if value is MISSING:
            return _json({"error": f"no value at path {path!r}", "path": path, "sequence": v.sequence}, 404, v)
        return _json(encode(value), 200, v)

    @app.get("/quote/<item>")
    def price_quote(item: str) -> Response:
        v = pump.version  # once: price and markup come from the same version
        try:
            return _json(quote_from(v.state, item), 200, v)
        except NoPrice as exc:
            return _json({"error": str(exc), "item": item}, 404, v)
        except PricingError as exc:
            return _json({"error": f"the configuration is not usable: {exc}"}, 500, v)

    @app.get("/readyz")
    def readiness() -> Response:
        v = pump.version
        if pump.ready:
            return _json({"ready": True, "sequence": v.sequence}, 200, v)
        return _json({"ready": False, "reason": pump.not_ready_reason, "sequence": v.sequence}, 503, v)

    return app
