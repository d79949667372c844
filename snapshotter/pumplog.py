"""The pump's log lines, said in the snapshotter's words while a run catches up.

A run folds with the very pump ``statepump run`` uses, and that pump speaks
as a sidecar: "live: caught up", "not serving as ready: ...", "serving
sequence N". Someone who runs only the snapshotter serves nothing, so while
:func:`speaking_for_the_snapshotter` is active (in the run's task and the
pump's tasks it starts, through a context variable: another pump in the same
process is left alone), a filter on the pump's logger:

* drops the lines the run says itself, once and in its own words: the pump's
  "caught up" (the run logs where it got and how fast), and the stop at a
  poison event or a gap and the pump's own failure (the run fails with one
  line naming what it could not reach);
* rewrites the others: no "not serving as ready", "serving sequence N" becomes
  "at sequence N".

>>> record = logging.LogRecord("statepump.pump", logging.ERROR, "", 0,
...     "not serving as ready: %s; serving sequence %d and retrying", ("the hub is down", 7), None)
>>> in_snapshotter_words(record), record.getMessage()
(True, 'the hub is down; at sequence 7, retrying')
>>> in_snapshotter_words(logging.LogRecord("statepump.pump", logging.INFO, "", 0,
...     "live: caught up at sequence %d", (9,), None))
False
>>> in_snapshotter_words(logging.LogRecord("statepump.pump", logging.WARNING, "", 0,
...     "not serving as ready: still stopped at poison event %d (first seen %s)", (8, "then"), None))
False
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar

#: The logger whose lines are the pump's (statepump/pump/).
PUMP_LOGGER = "statepump.pump"

_ACTIVE: ContextVar[bool] = ContextVar("snapshotter_speaks_for_the_pump", default=False)

_NOT_READY = "not serving as ready: "
# Lines the run replaces by its own: the rendered text starts with one of these.
_SAID_BY_THE_RUN = (
    "live: caught up",  # the run's "caught up at N: E events in S s"
    "the pump stopped: ",  # the run's "cannot reach sequence N: ..."
)
# A stop that ends the run at once (run_to_target raises), which its failure line names.
_ENDS_THE_RUN = re.compile(r"^(still stopped at )?poison event \d+ |^sequence gap|; re-checking every ")
_SERVING = re.compile(r"serving sequence (-?\d+)( and retrying)?")


def in_snapshotter_words(record: logging.LogRecord) -> bool:
    """Rewrite ``record`` in place for a snapshotter's reader; False when the run says it itself."""
    text = record.getMessage()
    if text.startswith(_SAID_BY_THE_RUN) and record.exc_info is None:
        return False
    if text.startswith(_NOT_READY):
        text = text[len(_NOT_READY) :]
        if _ENDS_THE_RUN.search(text):
            return False
    text = _SERVING.sub(lambda m: f"at sequence {m[1]}" + (", retrying" if m[2] else ""), text)
    record.msg, record.args = text, None
    return True


class _Filter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _ACTIVE.get() or in_snapshotter_words(record)


_FILTER = _Filter()


@contextlib.contextmanager
def speaking_for_the_snapshotter() -> Iterator[None]:
    """While active, the pump's lines logged from this context (and tasks started in it) are the run's."""
    logger = logging.getLogger(PUMP_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
