"""A FastAPI app that embeds the pump: started and stopped in the app's lifespan, on uvicorn's event loop.

Each request takes one version (the ``current_version`` dependency, or
``await pump.wait_for(n)``) and reads only its ``state``: the pump swaps in
new versions between batches, so two reads of ``pump.state`` in one request
could see two different versions.

Run it against a local emulator (see examples/README.md)::

    export STATEPUMP_CONNECTION_STRING='Endpoint=sb://127.0.0.1:5672/;...'   # what `statepump emulator` prints
    uvicorn examples.fastapi_app:app

Routes (as in :mod:`examples.flask_app`):

* ``GET /config/{path}``: the JSON value at ``path`` (``/config/``: everything) with the
  ``Statepump-Sequence`` header; ``?min_sequence=N&timeout=S`` for read-your-writes (504 after S seconds).
* ``GET /quote/{item}``: ``prices/<item>`` and its markup, both from one version.
* ``GET /readyz``: 200 once caught up with the hub, 503 with the reason before or after a stop.

Start-up waits up to ``STATEPUMP_EXAMPLE_READY_TIMEOUT`` seconds (default 60) for the pump
to catch up; if it has not by then, the app serves anyway and ``/readyz`` says why.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from examples.pricing import NoPrice, PricingError, quote_from
from examples.protocol import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, SEQUENCE_HEADER, refusal
from examples.pump_settings import hub_settings
from statepump.components import make_pump
from statepump.core.errors import ConfigError
from statepump.core.events import Version
from statepump.core.statejson import MISSING, encode, walk
from statepump.pump import Pump, PumpFailed
from statepump.settings import Settings

log = logging.getLogger("examples.fastapi_app")


def ready_timeout() -> float:
    """Seconds the start-up waits for the pump to catch up (``STATEPUMP_EXAMPLE_READY_TIMEOUT``, default 60)."""
    raw = os.environ.get("STATEPUMP_EXAMPLE_READY_TIMEOUT", "60")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"STATEPUMP_EXAMPLE_READY_TIMEOUT must be a positive number of seconds, not {raw!r}")
    return seconds


def the_pump(request: Request) -> Pump[Any]:
    """The app's pump (a dependency)."""
    return cast(Pump[Any], request.app.state.pump)


PumpDependency = Annotated[Pump[Any], Depends(the_pump)]


def current_version(pump: PumpDependency) -> Version[Any]:
    """The one version a request reads from (a dependency)."""
    return pump.version


VersionDependency = Annotated[Version[Any], Depends(current_version)]


def _json(body: object, status: int = 200, version: Version[Any] | None = None) -> Response:
    headers = {SEQUENCE_HEADER: str(version.sequence)} if version is not None else None
    if isinstance(body, bytes):
        return Response(body, status_code=status, media_type="application/json", headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; its pump starts when the server starts the lifespan, and stops with it.

    Example::

        app = create_app()      # nothing runs yet
        uvicorn.run(app)        # lifespan: start, wait until ready, serve, stop
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pump = make_pump(settings or hub_settings())
        await pump.start()
        try:
            try:
                await pump.wait_ready(timeout=ready_timeout())
            except (TimeoutError, PumpFailed):
                # Served anyway: /readyz and every read answer 503 with the reason, which a probe can see.
                log.warning("statepump not ready (%s); serving, /readyz answers 503", pump.not_ready_reason)
            app.state.pump = pump
            yield
        finally:
            await pump.stop()

    app = FastAPI(title="statepump FastAPI example", lifespan=lifespan)

    @app.middleware("http")
    async def refuse_while_unusable(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        pump = getattr(request.app.state, "pump", None)
        reason = None if pump is None or request.url.path == "/readyz" else refusal(pump)
        if reason is not None:
            return _json({"error": f"not ready: {reason}", "reason": reason}, 503)
        return await call_next(request)

    @app.get("/config/{path:path}")
    async def config_value(
        path: str,
        pump: PumpDependency,
        min_sequence: Annotated[int | None, Query(ge=0)] = None,
        timeout: Annotated[float, Query(gt=0, le=MAX_WAIT_SECONDS)] = DEFAULT_WAIT_SECONDS,
    ) -> Response:
        if min_sequence is None:
            v = pump.version
        else:
            try:
                v = await pump.wait_for(min_sequence, timeout)
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

    @app.get("/quote/{item}")
    async def price_quote(item: str, v: VersionDependency) -> Response:
        try:
            return _json(quote_from(v.state, item), 200, v)
        except NoPrice as exc:
            return _json({"error": str(exc), "item": item}, 404, v)
        except PricingError as exc:
            return _json({"error": f"the configuration is not usable: {exc}"}, 500, v)

    @app.get("/readyz")
    async def readiness(pump: PumpDependency, v: VersionDependency) -> Response:
        if pump.ready:
            return _json({"ready": True, "sequence": v.sequence}, 200, v)
        return _json({"ready": False, "reason": pump.not_ready_reason, "sequence": v.sequence}, 503, v)

    return app


app = create_app()
