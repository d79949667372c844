"""Fixtures shared by the Event Hubs tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from statepump.emulator import Emulator
from statepump.sources.eventhub import EventHubSource


@pytest.fixture
async def sources(emulator: Emulator) -> AsyncIterator[list[EventHubSource]]:
    """Sources a test makes (append them); each is closed when the test ends."""
    made: list[EventHubSource] = []
    yield made
    for source in made:
        await source.close()
