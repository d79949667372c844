"""Control of Python's cyclic garbage collector around large persistent states.

Why this module exists: pyrsistent's C vector (which backs every ``PMap``'s
bucket table) lets the collector traverse every element. Each event creates a
new, young bucket vector, and a young-generation collection walks all of it:
with a 1,000,000-key map one gen-0 collection took 206 ms here, and folding
``set`` events ran at 1,325 events/s with the collector on against 197,091/s
with it off (bench figure 2 keeps measuring this). ``gc.freeze()`` does
not help, because the expensive object is the *new* vector, not the old ones.

Persistent structures are acyclic, so the fold itself creates no garbage that
only the cyclic collector can free; reference counting frees old versions.
The policy is therefore:

* while statepump folds (catch-up batches, live batches), the collector is off
  (:func:`paused`, re-entrant and thread-safe);
* while a pump is running, automatic collection stays off, and
  :class:`Collector` runs an explicit full collection every ``interval``
  seconds (default 300 s; ``0`` disables it) so that cycles made by the rest of
  an embedding application are still freed. After each one, the survivors
  are moved out of the collector's sight with ``gc.freeze()`` (they are still
  freed by reference counting), so the next collection examines only what
  was allocated since: at 1M keys the first explicit collection paused
  762 ms and one after a freeze and 10,000 events 194 ms, against 854 ms
  without the freeze (bench figure 7's note keeps measuring the first).
  :meth:`Collector.stop` unfreezes, and hands everything allocated while the
  pump ran to the oldest generation unexamined, so that turning automatic
  collection back on does not start with a walk of the whole state. The cost: a reference cycle among
  objects that survived a collection is not collected by the next ones, so
  every ``full_every``-th collection (default 12: hourly) unfreezes first and
  looks at everything. An application that uses ``gc.freeze()`` itself (a
  pre-fork server) should know that those full collections unfreeze its
  objects too.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    """Turn automatic collection off for the duration of the block.

    Nested and concurrent uses are counted; the collector comes back on only
    when the outermost block ends, and only if it was on before.

    >>> import gc
    >>> with paused():
    ...     gc.isenabled()
    False
    """
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


class Collector:
    """Keeps automatic collection off while a pump runs; collects on a schedule instead.

    >>> c = Collector(interval=0)
    >>> c.start(); c.maybe_collect(); c.stop()
    False
    """

    def __init__(self, interval: float = 300.0, full_every: int = 12) -> None:
        self.interval = interval
        self.full_every = full_every
        self.collections = 0
        self.last_pause_seconds = 0.0
        self._stack = ExitStack()
        self._next = 0.0

    def start(self) -> None:
        self._stack.enter_context(paused())
        self._next = time.monotonic() + self.interval

    def stop(self) -> None:
        # Everything the fold made since the last collection is still in the youngest
        # generation, so the first automatic collection would walk the whole state
        # (454 ms at 300,000 keys, seconds at a million). freeze() then unfreeze()
        # moves every tracked object to the oldest generation without examining any.
        gc.freeze()
        gc.unfreeze()
        self._stack.close()

    def maybe_collect(self) -> bool:
        """Collect if the interval has passed; called by the pump between batches, never mid-fold."""
        if self.interval <= 0 or time.monotonic() < self._next:
            return False
        started = time.perf_counter()
        if self.collections % self.full_every == self.full_every - 1:
            # Now and then look at everything again, so that cycles among
            # objects that survived an earlier collection are freed too.
            gc.unfreeze()
        gc.collect()
        gc.freeze()  # survivors leave the collector's view: the next collection walks only newer objects
        self.last_pause_seconds = time.perf_counter() - started
        self.collections += 1
        self._next = time.monotonic() + self.interval
        return True
