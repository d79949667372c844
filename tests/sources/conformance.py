"""The one test suite every event source passes.

Subclass :class:`SourceConformance` in a ``test_*.py`` module and provide the
``publish`` fixture: an async callable that puts the given events into a fresh
partition ``"0"`` of your backing store (memory, the emulator through the SDK,
Capture files) and returns a source reading it. Everything the pump relies on
from a source is asserted here, once, for all adapters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from statepump.core.events import Event
from statepump.sources import EventSource

Published = tuple[bytes, Mapping[str, Any]]
Publish = Callable[[list[Published]], Awaitable[EventSource]]


async def collect(source: EventSource, after: int, count: int, timeout: float = 30.0) -> list[Event]:
    """Read until ``count`` events arrived, the source ended, or ``timeout`` passed."""
    events: list[Event] = []
    try:
        async with asyncio.timeout(timeout):
            async for batch in source.read(after):
                events.extend(batch)
                if len(events) >= count:
                    break
    except TimeoutError:
        pass
    return events


#: A property of every type a writer may set, and what each becomes in the canonical Event (see Event's docstring).
EVERY_PROPERTY_TYPE: Mapping[str, Any] = {
    "text": "été",
    "utf8-bytes": b"plain",
    "binary": b"\xff\x00\xfe",
    "int": -7,
    "large": 2**31 - 1,  # the SDK sends an int as an AMQP int (32 bits)
    "float": 0.25,
    "true": True,
    "false": False,
    "none": None,
}
CANONICAL: Mapping[str, Any] = {
    "text": "été",
    "utf8-bytes": "plain",
    "binary": b"\xff\x00\xfe",
    "int": -7,
    "large": 2**31 - 1,  # the SDK sends an int as an AMQP int (32 bits)
    "float": 0.25,
    "true": 1,
    "false": 0,
    "none": None,
}


def bodies(n: int, start: int = 0) -> list[Published]:
    return [(f'{{"op":"set","path":"k{i}","value":{i}}}'.encode(), {"n": i, "kind": "test"}) for i in range(start, n)]


class SourceConformance:
    """What every EventSource must do."""

    #: Live sources never end a read on their own; finite ones do.
    live: bool = True

    @pytest.fixture
    def publish(self) -> Publish:
        raise NotImplementedError("a conformance subclass provides the publish fixture")

    async def test_reads_every_event_in_order_once(self, publish: Publish) -> None:
        source = await publish(bodies(300))
        try:
            events = await collect(source, -1, 300)
            assert [e.sequence for e in events] == list(range(300))
            assert [e.body for e in events] == [b for b, _ in bodies(300)]
            assert all(e.partition == "0" for e in events)
            assert all(isinstance(e.offset, str) and e.offset for e in events)
            times = [e.enqueued_time for e in events]
            assert all(isinstance(t, datetime) and t.utcoffset() is not None for t in times)
            assert times == sorted(times)
        finally:
            await source.close()

    async def test_read_starts_after_the_given_sequence_number(self, publish: Publish) -> None:
        source = await publish(bodies(120))
        try:
            events = await collect(source, 99, 20)
            assert [e.sequence for e in events] == list(range(100, 120))
        finally:
            await source.close()

    async def test_bounds_report_first_and_last(self, publish: Publish) -> None:
        source = await publish(bodies(50))
        try:
            bounds = await source.bounds()
            assert (bounds.first, bounds.last) == (0, 49)
            assert not bounds.empty
        finally:
            await source.close()

    async def test_application_properties_survive(self, publish: Publish) -> None:
        source = await publish(bodies(3))
        try:
            events = await collect(source, -1, 3)
            assert [dict(e.properties).get("n") for e in events] == [0, 1, 2]
            assert all(dict(e.properties).get("kind") == "test" for e in events)
        finally:
            await source.close()

    async def test_every_property_type_arrives_in_the_one_canonical_form(self, publish: Publish) -> None:
        # Identical Events whatever the source: a reducer reading properties or times folds the same
        # on a node that caught up from Capture as on one that read the hub or a relay.
        source = await publish([(b"{}", EVERY_PROPERTY_TYPE), (b"{}", {})])
        try:
            first, second = await collect(source, -1, 2)
            properties = dict(first.properties)
            assert properties == CANONICAL
            assert {k: type(v) for k, v in properties.items()} == {k: type(v) for k, v in CANONICAL.items()}
            assert dict(second.properties) == {}
            for event in (first, second):
                assert event.enqueued_time.utcoffset() == timedelta(0)
                assert event.enqueued_time.microsecond % 1000 == 0  # whole milliseconds
        finally:
            await source.close()

    async def test_nothing_after_the_last_event(self, publish: Publish) -> None:
        source = await publish(bodies(10))
        try:
            # A live source waits (and may yield empty batches); a finite one ends.
            late = await collect(source, 9, 1, timeout=3.0 if self.live else 30.0)
            assert late == []
        finally:
            await source.close()
