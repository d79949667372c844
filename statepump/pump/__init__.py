"""The pump: load a snapshot, catch up, tail the hub, publish versions.

The I/O shell around the pure core, in three modules, one per concern:

- :mod:`~statepump.pump.published`: what readers see and wait on: the
  current ``Version`` (replaced by one reference swap per publish, so readers
  take no lock), readiness and why not, subscribers, read-your-writes
  waiters; and the ``Publishing``, the only way to change any of it.
- :mod:`~statepump.pump.executor`: the loop that feeds it: load the newest
  usable snapshot, plan, read Capture or the hub, fold, publish; gaps,
  poison events, outages, progress logs and counters.
- :mod:`~statepump.pump.lifecycle`: the ``Pump`` an application holds: the
  readers' side plus start/stop (in the running loop or on a thread of its
  own) and ``status()``.

All of them log to ``statepump.pump``.
"""

from statepump.pump.executor import CATCHUP_PUBLISH_INTERVAL
from statepump.pump.lifecycle import Pump, StoppedAtGap
from statepump.pump.published import PumpFailed, Subscriber

__all__ = ["CATCHUP_PUBLISH_INTERVAL", "Pump", "PumpFailed", "StoppedAtGap", "Subscriber"]
