"""The emulator as one object: AMQP listener, admin endpoint, retention and Capture.

>>> import asyncio
>>> async def demo() -> str:
...     emulator = Emulator(partitions=1)
...     await emulator.start()
...     try:
...         return emulator.connection_string.split(";")[-1]
...     finally:
...         await emulator.stop()
>>> asyncio.run(demo())
'UseDevelopmentEmulator=true'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from statepump.core.captureformat import DEFAULT_NAME_FORMAT
from statepump.emulator import quotas
from statepump.emulator.admin import start_admin
from statepump.emulator.capturewriter import BlobDestination, Capturer, Destination, DirectoryDestination
from statepump.emulator.hub import Hub
from statepump.emulator.listener import AmqpClient

log = logging.getLogger("statepump.emulator")

#: Without ``Emulator(key=...)`` any key is accepted; these fill the connection string's required fields.
KEY_NAME = "RootManageSharedAccessKey"
KEY = "emulator-accepts-any-key"


class Emulator:
    """A local Event Hubs namespace with one event hub, for development and tests.

    ``data_dir`` None keeps events in memory; ``admin_port`` None runs no admin
    endpoint (0 picks a free port); ``capture_dir`` or ``capture_container``
    (with ``storage_connection_string``) turns Capture on. ``key`` None
    accepts any token, as the official emulator does; with a key, clients
    must put a SAS token signed with it (as ``RootManageSharedAccessKey``)
    before they may read, write or ask the management node, and a wrong
    key is refused with 401 as by the service.

    The service's limits (:mod:`.quotas`, :mod:`.throttle`): receivers attach
    only to ``$Default`` and the ``consumer_groups`` given (or created later
    with :meth:`create_consumer_group`), at most ``receivers_per_partition``
    per partition and group (None: no limit); ``max_connections`` caps the
    connections; ``throughput_units`` paces what all readers receive together
    to 2 MiB/s or 4,096 events/s per unit, and with ``throttle_ingress`` sends
    past 1 MiB/s or 1,000 events/s per unit are refused as server busy.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        namespace: str = "emulator",
        eventhub: str = "hub",
        partitions: int = 2,
        data_dir: Path | None = None,
        retention: float | None = None,
        admin_port: int | None = None,
        capture_dir: Path | None = None,
        capture_container: str | None = None,
        storage_connection_string: str | None = None,
        capture_interval: float = 300.0,
        capture_name_format: str = DEFAULT_NAME_FORMAT,
        key: str | None = None,
        consumer_groups: Iterable[str] = (),
        receivers_per_partition: int | None = quotas.RECEIVERS_PER_PARTITION,
        max_connections: int | None = None,
        throughput_units: int | None = None,
        throttle_ingress: bool = False,
    ) -> None:
        if retention is not None and retention <= 0:
            raise ValueError(f"retention must be a positive number of seconds, not {retention}")
        if capture_dir is not None and capture_container is not None:
            raise ValueError("give capture_dir or capture_container, not both")
        if capture_container is not None and not storage_connection_string:
            raise ValueError("capture_container needs storage_connection_string")
        if receivers_per_partition is not None and receivers_per_partition < 1:
            raise ValueError(f"receivers_per_partition must be at least 1 (or None), not {receivers_per_partition}")
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1 (or None), not {max_connections}")
        if throughput_units is not None and throughput_units < 1:
            raise ValueError(f"throughput_units must be at least 1 (or None), not {throughput_units}")
        if throttle_ingress and throughput_units is None:
            raise ValueError("throttle_ingress needs throughput_units")
        self.host = host
        self.port = port
        self.namespace = namespace
        self.eventhub = eventhub
        self.partitions = partitions
        self.data_dir = data_dir
        self.retention = retention
        self.admin_port = admin_port
        self._capture_dir = capture_dir
        self._capture_container = capture_container
        self._storage_connection_string = storage_connection_string
        self._capture_interval = capture_interval
        self._capture_name_format = capture_name_format
        self.key = key
        self.consumer_groups = list(consumer_groups)
        for name in self.consumer_groups:
            quotas.check_group_name(name)  # a bad name fails here, not at start()
        self.receivers_per_partition = receivers_per_partition
        self.max_connections = max_connections
        self.throughput_units = throughput_units
        self.throttle_ingress = throttle_ingress
        self.hub: Hub | None = None
        self.capturer: Capturer | None = None
        self._clients: set[AmqpClient] = set()
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connection_string(self) -> str:
        """A connection string the ``azure-eventhub`` SDK accepts for this emulator."""
        return (
            f"Endpoint=sb://{self.host}:{self.port}/;SharedAccessKeyName={KEY_NAME};"
            f"SharedAccessKey={self.key or KEY};EntityPath={self.eventhub};UseDevelopmentEmulator=true"
        )

    def _hub(self) -> Hub:
        if self.hub is None:
            raise RuntimeError("the emulator is not started")
        return self.hub

    async def start(self) -> None:
        """Open the data, bind the listeners (``port``/``admin_port`` become the real ports)."""
        if self.hub is not None:
            raise RuntimeError("the emulator is already started")
        hub = Hub(
            self.eventhub,
            partitions=self.partitions,
            data_dir=self.data_dir,
            namespace=self.namespace,
            consumer_groups=self.consumer_groups,
            receivers_per_partition=self.receivers_per_partition,
            max_connections=self.max_connections,
            throughput_units=self.throughput_units,
            throttle_ingress=self.throttle_ingress,
        )
        self.hub = hub
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: AmqpClient(hub, self._clients, key_name=KEY_NAME, key=self.key), self.host, self.port
            )
            self.port = self._server.sockets[0].getsockname()[1]
            if self.admin_port is not None:
                self._admin = await start_admin(hub, self.host, self.admin_port)
                self.admin_port = self._admin.sockets[0].getsockname()[1]
        except BaseException:
            await self.stop()
            raise
        if self.retention is not None:
            self._tasks.append(asyncio.create_task(self._retain(self.retention)))
        destination: Destination | None = None
        if self._capture_dir is not None:
            destination = DirectoryDestination(self._capture_dir)
        elif self._capture_container is not None and self._storage_connection_string:
            destination = BlobDestination(self._storage_connection_string, self._capture_container)
        if destination is not None:
            self.capturer = Capturer(
                hub,
                destination,
                namespace=self.namespace,
                interval=self._capture_interval,
                name_format=self._capture_name_format,
                state_dir=self.data_dir,
            )
            self._tasks.append(asyncio.create_task(self.capturer.run()))

    async def _retain(self, retention: float) -> None:
        # Check often enough that the beginning moves within ~1% of retention (at most 1 s late).
        period = min(max(retention / 100, 0.01), 1.0)
        while True:
            try:
                self._hub().apply_retention(retention)
            except Exception:
                log.exception("emulator: retention pass failed")
            await asyncio.sleep(period)

    async def stop(self) -> None:
        """Close every connection and listener, stop timers, close the logs."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for server in (self._server, self._admin):
            if server is not None:
                server.close()
        for client in list(self._clients):
            client.close("the emulator is stopping")
        for server in (self._server, self._admin):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2.0)
        self._server = self._admin = None
        if self.capturer is not None:
            await self.capturer.close()
            self.capturer = None
        if self.hub is not None:
            self.hub.close()
            self.hub = None

    def expire(self, partition: str, before_sequence: int) -> None:
        """Drop the events of ``partition`` below ``before_sequence``, as retention would."""
        self._hub().expire(partition, before_sequence)

    def partition_info(self, partition: str) -> dict[str, object]:
        """The partition's numbers (as the admin endpoint's ``GET /partitions/{id}``)."""
        return self._hub().info(partition).as_dict()

    def create_consumer_group(self, name: str) -> str:
        """Create a consumer group while running, as the management plane does; return the name kept."""
        created, _ = self._hub().create_consumer_group(name)
        if all(created.lower() != g.lower() for g in [quotas.DEFAULT_GROUP, *self.consumer_groups]):
            self.consumer_groups.append(created)  # kept if the emulator is started again
        return created

    def receivers(self) -> dict[str, Any]:
        """Who receives what (as the admin endpoint's ``GET /receivers``)."""
        return self._hub().receiver_table()

    def egress(self, partition: str = "0") -> dict[str, dict[str, int]]:
        """Events and bytes delivered on ``partition`` by consumer group (as ``GET /partitions/{id}``'s ``egress``)."""
        return self._hub().egress_counts(partition)

    async def flush_capture(self) -> None:
        """Write the current Capture window now."""
        if self.capturer is None:
            raise RuntimeError("Capture is not configured (give capture_dir or capture_container)")
        await self.capturer.flush()


async def serve_forever(emulator: Emulator) -> None:
    """Start ``emulator``, log its connection string, run until SIGINT/SIGTERM, stop."""
    await emulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    admin = f" admin http://{emulator.host}:{emulator.admin_port}" if emulator.admin_port is not None else ""
    shown = emulator.connection_string
    if emulator.key is not None:  # a chosen key is a secret: the log names where it came from instead
        shown = shown.replace(f"SharedAccessKey={emulator.key};", "SharedAccessKey=<the key it was given>;")
    log.info("Event Hubs emulator ready: %s%s", shown, admin)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await emulator.stop()
