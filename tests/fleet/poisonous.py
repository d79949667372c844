"""A custom reducer for the poison-release test: the config reducer, failing (poison, not a rejection) on ``boom``."""

from __future__ import annotations

from typing import Any

from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.reducer import reducer


@reducer("poisonous", 1)
def poisonous(state: Any, event: Event) -> Any:
    if b"boom" in event.body:
        raise RuntimeError("the poisonous reducer cannot fold this event")
    return config(state, event)
