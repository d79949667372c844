"""Throughput units (pure): a token bucket of events and bytes per second, shared by a namespace.

A Standard namespace buys throughput units; each allows 1 MB/s or 1,000
events/s in and 2 MB/s or 4,096 events/s out, shared by every sender or
every reader of the namespace, whichever of the two limits comes first.
What the service does past them differs by direction
(https://learn.microsoft.com/azure/event-hubs/event-hubs-scalability):

* ingress is refused with ``com.microsoft:server-busy`` and the text in
  :data:`SERVER_BUSY_TEXT` (error code 50002); the Python SDK (5.15)
  raises it to the caller as ``EventDataSendError`` without retrying;
* egress "doesn't produce throttling exceptions, but is still limited": the
  service delivers more slowly. The emulator paces its deliveries the same way.

The bucket holds one second of its rates and refills continuously. It may be
overdrawn by the one event or batch that found it not empty, which is how a
batch larger than a second's budget can still get through; the debt is then
paid back before anything else passes.

>>> bucket = TokenBucket(events_per_second=10, bytes_per_second=1000, now=0.0)
>>> bucket.ready(0.0)
True
>>> bucket.take(0.0, events=15, nbytes=100)
>>> bucket.ready(0.0), round(bucket.wait(0.0), 3)
(False, 0.5)
>>> bucket.ready(0.5)
True
"""

from __future__ import annotations

from typing import Final

SERVER_BUSY: Final = b"com.microsoft:server-busy"
SERVER_BUSY_TEXT: Final = (
    "The request was terminated because the entity is being throttled. Error code : 50002. "
    "Please wait 4 seconds and try again. To know more visit https://aka.ms/sbResourceMgrExceptions"
)

MEGABYTE: Final = 1024 * 1024
INGRESS_EVENTS_PER_UNIT: Final = 1000
INGRESS_BYTES_PER_UNIT: Final = 1 * MEGABYTE
EGRESS_EVENTS_PER_UNIT: Final = 4096
EGRESS_BYTES_PER_UNIT: Final = 2 * MEGABYTE

#: How much a throttled reader waits at least before it looks again, and
#: the slice of a second's budget one delivery pass may use.
TICK: Final = 0.05


class TokenBucket:
    """Events and bytes per second; ``burst`` seconds of both may accumulate."""

    def __init__(self, *, events_per_second: float, bytes_per_second: float, now: float, burst: float = 1.0) -> None:
        if events_per_second <= 0 or bytes_per_second <= 0 or burst <= 0:
            raise ValueError("a token bucket needs positive rates and burst")
        self.rates = (float(events_per_second), float(bytes_per_second))
        self.capacity = (self.rates[0] * burst, self.rates[1] * burst)
        self._events, self._bytes = self.capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._updated = max(self._updated, now)
        self._events = min(self.capacity[0], self._events + elapsed * self.rates[0])
        self._bytes = min(self.capacity[1], self._bytes + elapsed * self.rates[1])

    def level(self, now: float) -> tuple[float, float]:
        """(events, bytes) available at ``now``; negative while a debt is paid back."""
        self._refill(now)
        return self._events, self._bytes

    def ready(self, now: float) -> bool:
        """Whether something may pass now (neither budget is in debt)."""
        events, nbytes = self.level(now)
        return events >= 0 and nbytes >= 0

    def take(self, now: float, *, events: int, nbytes: int) -> None:
        """Spend ``events`` and ``nbytes`` (the caller checked :meth:`ready`; this may overdraw)."""
        self._refill(now)
        self._events -= events
        self._bytes -= nbytes

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until :meth:`ready` (0 if it is)."""
        events, nbytes = self.level(now)
        if events >= 0 and nbytes >= 0:
            return 0.0
        # A microsecond more, so that float rounding cannot leave it a hair short at now + wait.
        return max(-events / self.rates[0], -nbytes / self.rates[1]) + 1e-6

    def share(self, receivers: int) -> tuple[int, int]:
        """What one delivery pass of one of ``receivers`` may send: a :data:`TICK` of the rates, divided
        among them (at least one event), so that readers sharing the namespace take turns."""
        parts = max(1, receivers)
        return max(1, int(self.rates[0] * TICK / parts)), max(1, int(self.rates[1] * TICK / parts))


def egress(throughput_units: int, now: float) -> TokenBucket:
    """What ``throughput_units`` let every reader of a namespace receive together."""
    return TokenBucket(
        events_per_second=EGRESS_EVENTS_PER_UNIT * throughput_units,
        bytes_per_second=EGRESS_BYTES_PER_UNIT * throughput_units,
        now=now,
    )


def ingress(throughput_units: int, now: float) -> TokenBucket:
    """What ``throughput_units`` let every sender of a namespace send together."""
    return TokenBucket(
        events_per_second=INGRESS_EVENTS_PER_UNIT * throughput_units,
        bytes_per_second=INGRESS_BYTES_PER_UNIT * throughput_units,
        now=now,
    )
