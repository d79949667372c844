"""Capture for the emulator: one Avro file per partition per window, like the service.

Every ``interval`` seconds (or on :meth:`Capturer.flush`), each partition's
events enqueued since its *cursor* are written as one file named by the time
the window opened, with :func:`statepump.core.captureformat.write_capture_file` and
:func:`statepump.core.captureformat.render_name`, to a directory or a Blob container.
Empty windows give empty files, as the service writes by default.

Nothing is lost when the destination is unreachable: the cursor of a
partition moves only after its file is written, so a failed window's events
go into the next window's file. Cursors are kept in
``DATA_DIR/capture-cursors.json`` so a restarted emulator carries on where it
stopped. Events that retention drops before they were captured are gone, as
on the service.

Two windows can open in the same second (``flush`` called twice quickly);
their names would collide, so the second file then rewrites the first with
both windows' events instead of replacing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from statepump.core.captureformat import render_name, validate_name_format, write_capture_file
from statepump.core.events import Event
from statepump.emulator.hub import Hub
from statepump.emulator.log import Record
from statepump.emulator.messages import view_event

log = logging.getLogger("statepump.emulator.capturewriter")


class Destination(Protocol):
    """Where capture files go."""

    description: str

    async def write(self, name: str, data: bytes) -> None: ...

    async def close(self) -> None: ...


class DirectoryDestination:
    """Files under a local directory; each appears whole (written aside, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"directory {root}"

    def _write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def write(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, name, data)

    async def close(self) -> None:
        return None


class BlobDestination:
    """Block blobs in one container (created if missing), by storage connection string."""

    def __init__(self, connection_string: str, container: str) -> None:
        from azure.storage.blob.aio import BlobServiceClient

        self._service = BlobServiceClient.from_connection_string(connection_string)
        self._container = self._service.get_container_client(container)
        self._created = False
        self.description = f"blob container {container!r}"

    async def write(self, name: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._container.create_container()
            self._created = True
        await self._container.upload_blob(name, data, overwrite=True)

    async def close(self) -> None:
        await self._service.close()


def record_to_event(partition: str, record: Record) -> Event:
    view = view_event(record.payload)
    return Event(
        partition,
        record.sequence,
        str(record.offset),
        datetime.fromtimestamp(record.enqueued_ms / 1000, UTC),
        view.partition_key,
        view.properties,
        view.body,
    )


class Capturer:
    """Writes capture windows for every partition of ``hub``."""

    def __init__(
        self,
        hub: Hub,
        destination: Destination,
        *,
        namespace: str,
        interval: float,
        name_format: str,
        state_dir: Path | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if interval <= 0:
            raise ValueError(f"capture interval must be positive, not {interval}")
        self.hub = hub
        self.destination = destination
        self.namespace = namespace
        self.interval = interval
        self.name_format = validate_name_format(name_format)
        self._now = now
        self._state = state_dir / "capture-cursors.json" if state_dir is not None else None
        self.cursors: dict[str, int] = {}
        if self._state is not None and self._state.exists():
            self.cursors = {str(k): int(v) for k, v in json.loads(self._state.read_text()).items()}
        self._last: dict[str, tuple[str, int]] = {}  # partition -> (last file name, its first sequence)
        self.window_opened = now()
        self._lock = asyncio.Lock()

    async def flush(self) -> None:
        """Close the current window: write one file per partition, then open the next window."""
        async with self._lock:
            opened, self.window_opened = self.window_opened, self._now()
            for partition in self.hub.partition_ids:
                await self._write_partition(partition, opened)

    async def _write_partition(self, partition: str, opened: datetime) -> None:
        partition_log = self.hub.log(partition)
        name = render_name(self.name_format, self.namespace, self.hub.eventhub, partition, opened)
        start = self.cursors.get(partition, 0)
        previous = self._last.get(partition)
        if previous is not None and previous[0] == name:
            start = min(start, previous[1])
        start = max(start, partition_log.begin)
        last = partition_log.last
        records = list(partition_log.records_between(start, last))
        buffer = io.BytesIO()
        write_capture_file(buffer, (record_to_event(partition, r) for r in records))
        try:
            await self.destination.write(name, buffer.getvalue())
        except Exception as exc:
            log.warning(
                "capture: could not write %s to %s (%s: %s); its %d events go into the next window",
                name,
                self.destination.description,
                type(exc).__name__,
                exc,
                len(records),
            )
            return
        self._last[partition] = (name, start)
        self.cursors[partition] = last + 1
        self._save()

    def _save(self) -> None:
        if self._state is None:
            return
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cursors))
        os.replace(tmp, self._state)

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("capture: window failed")

    async def close(self) -> None:
        await self.destination.close()
