"""A process that holds one SDK receiver on an emulator until it is killed (the SIGKILL test's client).

``python -m tests.emulator.receiver_process CONNECTION_STRING PARTITION [CONSUMER_GROUP]`` receives
from the start of the partition and prints each event's body; it never closes anything itself.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from azure.eventhub.aio import EventHubConsumerClient


async def hold(connection_string: str, partition: str, consumer_group: str) -> None:
    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group, retry_total=0)

    async def on_event(_context: Any, event: Any) -> None:
        print(event.body_as_str(), flush=True)

    await client.receive(on_event, partition_id=partition, starting_position="-1")


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "$Default"))
