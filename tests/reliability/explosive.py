"""A custom reducer for the poison tests: counts events and raises on any body containing ``boom``."""

from __future__ import annotations

from typing import Any

from statepump.events import Event
from statepump.reducers import reducer


@reducer("explosive", 1)
def explosive(state: Any, event: Event) -> Any:
    if b"boom" in event.body:
        raise RuntimeError("the explosive reducer refuses this event on purpose")
    return state.set("n", state.get("n", 0) + 1)
