"""The errors statepump raises on purpose.

Each one names what was wrong in its message, because the message is what an
operator reads in a log line at three in the morning.
"""

from __future__ import annotations


class StatepumpError(Exception):
    """Base class of every error statepump raises deliberately."""


class SequenceGapError(StatepumpError):
    """Events are missing between what was applied and what arrived.

    ``expected`` is the first missing sequence number and ``got`` the one
    that arrived instead (or ``None`` when the missing range is known
    without an event, as in a catch-up plan); ``last_missing`` is the last
    number known to be missing.

    >>> str(SequenceGapError(expected=5, got=9))
    'sequence gap: expected event 5 but got 9 (events 5..8 are missing)'
    """

    def __init__(
        self,
        expected: int,
        got: int | None = None,
        *,
        last_missing: int | None = None,
        where: str = "",
    ) -> None:
        if last_missing is None and got is not None:
            last_missing = got - 1
        self.expected = expected
        self.got = got
        self.last_missing = last_missing
        self.where = where
        missing = (
            f"events {expected}..{last_missing} are missing"
            if last_missing is not None and last_missing != expected
            else f"event {expected} is missing"
        )
        head = f"expected event {expected} but got {got}" if got is not None else "no source has the next events"
        suffix = f" ({missing})" + (f" {where}" if where else "")
        super().__init__(f"sequence gap: {head}{suffix}")


class SnapshotCorrupt(StatepumpError):
    """A snapshot file could not be trusted: truncated, altered, unsigned or of an unknown format."""


class SnapshotExists(StatepumpError):
    """A snapshot of that name already exists; stores never overwrite one."""


class Rejected(StatepumpError):
    """Raise it from a reducer to reject an event: a deterministic no-op, never a stop.

    A rejected event leaves the state as it was and the version moves past it,
    on every node alike, whatever the poison policy: use it for an event that
    is understood but not allowed (an invalid operation, a failed
    precondition). Any other exception from a reducer is a *poison* event,
    for which the ``stop``/``skip`` policy decides. The message is the reason
    that status, logs and ``GET /v1/events/{sequence}`` show, so it must be
    deterministic (no times, no addresses).

    >>> from pyrsistent import pmap
    >>> from statepump import reducer
    >>> @reducer("prices", 1)
    ... def prices(state, event):
    ...     price = float(event.body)
    ...     if price <= 0:
    ...         raise Rejected(f"price must be positive, not {price}")
    ...     return state.set("price", price)
    >>> str(Rejected("price must be positive, not -1.0"))
    'price must be positive, not -1.0'
    """


class PoisonEventError(StatepumpError):
    """The reducer rejected an event; the state before it stays published."""

    def __init__(self, partition: str, sequence: int, error: BaseException) -> None:
        self.partition = partition
        self.sequence = sequence
        self.error = error
        super().__init__(f"poison event {sequence} on partition {partition}: {type(error).__name__}: {error}")


class ServiceUnavailable(StatepumpError, ConnectionError):
    """A hub or store could not be reached within its retry budget.

    Before a pump has been ready this ends it (``statepump run`` exits 1);
    afterwards the pump keeps serving its last version, not ready, and retries.
    """


class ConfigError(StatepumpError):
    """A setting is invalid; the message names the setting."""
