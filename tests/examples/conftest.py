"""Fixtures of the example tests: an emulator subprocess shared by a module, and sending to it with the SDK."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubProducerClient

from devservices import free_port
from devservices.emulator import EmulatorProcess


class Hub:
    """The emulator and a producer on it: what ``statepump send`` does, with the SDK's producer."""

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        self._producer = EventHubProducerClient.from_connection_string(connection_string)

    def send(self, *operations: Any, partition: str) -> int:
        """Send config operations as one batch, one event each; the sequence number of the last one.

        The tests are the only writer, so the partition's last enqueued
        number after the send is the last event's.
        """
        batch = self._producer.create_batch(partition_id=partition)
        for operation in operations:
            batch.add(EventData(json.dumps(operation).encode()))
        self._producer.send_batch(batch)
        return self.last_sequence(partition)

    def last_sequence(self, partition: str) -> int:
        return int(self._producer.get_partition_properties(partition)["last_enqueued_sequence_number"])

    def close(self) -> None:
        self._producer.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """An in-memory emulator with 6 partitions, so that each app of a module pumps a partition of its own."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    emulator = EmulatorProcess(["--port", str(port), "--partitions", "6", "--in-memory"], port, None, log_path)
    emulator.start()
    hub = None
    try:
        hub = Hub(emulator.connection_string)
        yield hub
    finally:
        if hub is not None:
            with contextlib.suppress(Exception):
                hub.close()
        emulator.kill()
