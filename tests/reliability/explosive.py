"""Custom reducers for the fault tests: one that raises on ``boom``, one that is slow."""

from __future__ import annotations

import time
from typing import Any

from statepump.core.configops import config
from statepump.core.errors import Rejected
from statepump.core.events import Event
from statepump.core.reducer import reducer


@reducer("explosive", 1)
def explosive(state: Any, event: Event) -> Any:
    if b"boom" in event.body:
        raise RuntimeError("the explosive reducer refuses this event on purpose")
    return state.set("n", state.get("n", 0) + 1)


@reducer("slow-config", 1)
def slow_config(state: Any, event: Event) -> Any:
    """The config reducer, made slow (0.2 ms an event) so that a catch-up lasts long enough to interfere with."""
    time.sleep(0.0002)
    return config(state, event)


@reducer("picky", 1)
def picky(state: Any, event: Event) -> Any:
    """Rejects (a deterministic no-op, not poison) an event that asks to be refused."""
    if b"refuse" in event.body:
        raise Rejected("the picky reducer refuses this event on purpose")
    return state.set("n", state.get("n", 0) + 1)
