"""What the example apps' HTTP answers share: the sequence header and the read-your-writes parameters.

Every answer read from the state names its version in ``Statepump-Sequence``
(as the sidecar's socket API does). ``?min_sequence=N&timeout=S`` asks to
wait until event ``N`` is applied: a writer gets ``N`` back from
``statepump send``. Pure: the apps turn :class:`BadQuery` into a 400 response.

>>> wait_arguments({"min_sequence": "7", "timeout": "2.5"})
(7, 2.5)
>>> wait_arguments({})
(None, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

#: The response header naming the sequence number of the version an answer was read from.
SEQUENCE_HEADER = "Statepump-Sequence"

#: A waiting request holds a server thread (Flask) or a worker (gunicorn), so waits are bounded.
MAX_WAIT_SECONDS = 30.0
DEFAULT_WAIT_SECONDS = 5.0


class _Readiness(Protocol):
    @property
    def failure(self) -> BaseException | None: ...

    @property
    def ready(self) -> bool: ...

    @property
    def not_ready_reason(self) -> str | None: ...

    @property
    def version(self) -> Any: ...


def refusal(pump: _Readiness) -> str | None:
    """Why the app must not answer from the state now (a 503 with this reason), or ``None``.

    The rule of the sidecar's socket API: the last good version is served
    while the pump catches up or is stopped by a poison event or a gap (it is
    exactly the fold of events 0..N, and the answer names N). Refused are a
    pump that stopped for good (its state may not belong to this hub at all:
    a snapshot ahead of the hub) and one that has nothing loaded yet.
    """
    if pump.failure is not None:
        return pump.not_ready_reason or f"the pump stopped: {pump.failure}"
    if not pump.ready and pump.version.sequence < 0:
        return pump.not_ready_reason or "the pump has not loaded any state yet"
    return None


class BadQuery(ValueError):
    """A query parameter that is not what the route accepts; the message names it."""


def wait_arguments(args: Mapping[str, str]) -> tuple[int | None, float]:
    """``min_sequence`` (``None``: do not wait) and ``timeout`` from a query string, checked.

    >>> wait_arguments({"min_sequence": "x"})
    Traceback (most recent call last):
    ...
    examples.protocol.BadQuery: min_sequence must be a non-negative integer, not 'x'
    >>> wait_arguments({"min_sequence": "1", "timeout": "600"})
    Traceback (most recent call last):
    ...
    examples.protocol.BadQuery: timeout must be a number of seconds in (0, 30], not '600'
    """
    raw_sequence = args.get("min_sequence")
    raw_timeout = args.get("timeout")
    if raw_sequence is None:
        return None, 0.0  # a timeout alone is ignored, as the sidecar's socket API does
    if not (raw_sequence.isascii() and raw_sequence.isdigit()):
        raise BadQuery(f"min_sequence must be a non-negative integer, not {raw_sequence!r}")
    if raw_timeout is None:
        return int(raw_sequence), DEFAULT_WAIT_SECONDS
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0  # reported below, with the value as given
    if not 0 < timeout <= MAX_WAIT_SECONDS:
        raise BadQuery(f"timeout must be a number of seconds in (0, {MAX_WAIT_SECONDS:g}], not {raw_timeout!r}")
    return int(raw_sequence), timeout
