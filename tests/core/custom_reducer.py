"""A plain-function reducer, loaded by name in test_reducers."""

from typing import Any

from statepump.core.events import Event


def count(state: Any, event: Event) -> Any:
    return state.set("n", state.get("n", 0) + 1)


count.version = 3  # type: ignore[attr-defined]
