"""Event Hubs Capture as an event source: one partition's Avro files, read in order.

A finite :class:`~statepump.sources.EventSource`: ``read(after)`` yields the
events after ``after`` that Capture holds and ends. The files live in an Azure
Blob container (as Capture writes them) or, for development, in a local
directory laid out the same way; a small :class:`CaptureFiles` adapter hides
which.

What it guarantees, beyond the source contract:

* Events come in ascending order, each once: records are ordered within a
  file (and across a file boundary) through a small reorder heap, duplicates
  (within or across files) are dropped.
* Contiguity is checked: when the events of a file cannot continue the
  sequence (a file is missing, a window was lost), :class:`SequenceGapError`
  names the missing range and the files on either side of it.
* Memory stays flat: files are downloaded in chunks and decoded a block at a
  time (see :class:`statepump.core.captureformat.BlockSplitter`); only out-of-order
  records wait in memory, at most ``max_reorder`` of them.
* Finding where to start costs a few small reads, not a pass over every
  file: see :meth:`CaptureSource.read`.

>>> import asyncio, tempfile
>>> async def demo(root: str) -> list[int]:
...     source = CaptureSource.from_directory(root, namespace="ns", eventhub="hub", partition="0")
...     try:
...         return [e.sequence async for batch in source.read(-1) for e in batch]
...     finally:
...         await source.close()
>>> with tempfile.TemporaryDirectory() as root:
...     asyncio.run(demo(root))
[]
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from statepump.core.captureformat import (
    DEFAULT_NAME_FORMAT,
    SYNC_SIZE,
    AvroHeader,
    BlockSplitter,
    CaptureFormatError,
    CaptureName,
    decode_block,
    last_block_start,
    name_prefix,
    parse_block,
    parse_header,
    parse_name,
    validate_name_format,
)
from statepump.core.errors import SequenceGapError
from statepump.core.events import Event, PartitionBounds
from statepump.storage.containers import Opened, SdkRetry, open_container

log = logging.getLogger(__name__)

#: Bytes asked for when probing a file's header and first block, or its last block.
PROBE_BYTES = 256 * 1024
#: Download chunk size: memory per open file is about one chunk plus one block.
CHUNK_BYTES = 4 * 1024 * 1024
#: Blocks are decoded in groups of about this many bytes.
GROUP_BYTES = 512 * 1024


# --------------------------------------------------------------------------- where the files are


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file as listed: its name relative to the container (or directory) and its size."""

    name: str
    size: int


class CaptureFiles(Protocol):
    """Where Capture files are: list them, stream one, read a byte range."""

    #: Where, for logs: never holds a secret.
    description: str

    async def list_files(self, prefix: str) -> list[StoredFile]:
        """Every file whose name starts with ``prefix``."""
        ...

    def chunks(self, name: str) -> AsyncIterator[bytes]:
        """The file's bytes, in chunks of about :data:`CHUNK_BYTES`. Raises
        :class:`FileNotFoundError` if the file is gone."""
        ...

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``. Raises :class:`FileNotFoundError`."""
        ...

    async def close(self) -> None: ...


class DirectoryFiles:
    """Capture files under a local directory, named by their relative paths with ``/``."""

    def __init__(self, root: str | os.PathLike[str], *, chunk_size: int = CHUNK_BYTES) -> None:
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.description = f"directory {self.root}"

    async def list_files(self, prefix: str) -> list[StoredFile]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[StoredFile]:
        # Walk only the directory the prefix names, not the whole tree.
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        found: list[StoredFile] = []
        for dirpath, _dirs, files in os.walk(base):
            for leaf in files:
                path = Path(dirpath, leaf)
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    try:
                        found.append(StoredFile(name, path.stat().st_size))
                    except FileNotFoundError:
                        continue  # deleted while listing
        return found

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(open, self.root / name, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, self.chunk_size):
                yield chunk
        finally:
            f.close()

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        def read() -> bytes:
            with open(self.root / name, "rb") as f:
                f.seek(offset)
                return f.read(length)

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        return None


class BlobFiles:
    """Capture files in an Azure Blob container (``azure.storage.blob.aio``).

    Owns the container client (and the credential, when given one to close).
    """

    def __init__(self, container: ContainerClient, *, credential: Any = None) -> None:
        self.container = container
        self._credential = credential
        parts = urlsplit(container.url)
        # The URL may carry a SAS token in its query: never show it.
        self.description = f"blob container {urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))}"

    async def list_files(self, prefix: str) -> list[StoredFile]:
        return [
            StoredFile(blob.name, int(blob.size or 0))
            async for blob in self.container.list_blobs(name_starts_with=prefix or None)
        ]

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        try:
            downloader = await self.container.download_blob(name, max_concurrency=1)
        except ResourceNotFoundError:
            raise FileNotFoundError(name) from None
        async for chunk in downloader.chunks():
            yield chunk

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            downloader = await self.container.download_blob(name, offset=offset, length=length, max_concurrency=1)
        except ResourceNotFoundError:
            raise FileNotFoundError(name) from None
        return await downloader.readall()

    async def close(self) -> None:
        await self.container.close()
        if self._credential is not None:
            await self._credential.close()


def _open(container: str, retry_seconds: float, **where: Any) -> Opened[ContainerClient]:
    """A client of ``container`` for reading Capture files: chunked downloads, SDK retries within the budget."""
    return open_container(
        container,
        retry=SdkRetry.within(retry_seconds),
        max_single_get_size=CHUNK_BYTES,
        max_chunk_get_size=CHUNK_BYTES,
        **where,
    )


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class _File:
    name: str
    size: int
    window_open: datetime


@dataclass(frozen=True, slots=True)
class _Probe:
    """What the start of a file says: its header, and its first block's events (none: empty file)."""

    header: AvroHeader
    first: int | None


class CaptureSource:
    """One partition's events from Event Hubs Capture files.

    Build it with :meth:`from_directory`, :meth:`from_connection_string` or
    :meth:`from_account_url`; ``namespace``, ``eventhub`` and ``partition`` are
    the values Capture puts in the names, ``name_format`` the hub's Capture
    file name format (without ``.avro``).

    ``time_hint`` (or :meth:`set_time_hint`) is the enqueued time of the event
    at which reading will start, usually the snapshot's: with it, locating the
    file that holds the next event costs two or three small reads.

    >>> source = CaptureSource.from_directory("/tmp/nowhere", namespace="ns", eventhub="hub", partition="0")
    >>> source.kind, source.description
    ('capture', 'Capture of ns/hub partition 0 in directory /tmp/nowhere')
    """

    kind = "capture"

    def __init__(
        self,
        files: CaptureFiles,
        *,
        namespace: str,
        eventhub: str,
        partition: str,
        name_format: str = DEFAULT_NAME_FORMAT,
        time_hint: datetime | None = None,
        batch_size: int = 1000,
        max_reorder: int = 100_000,
    ) -> None:
        self.files = files
        self.namespace = namespace
        self.eventhub = eventhub
        self.partition = partition
        self.name_format = validate_name_format(name_format)
        self.time_hint = time_hint
        self.batch_size = batch_size
        self.max_reorder = max_reorder
        self.description = f"Capture of {namespace}/{eventhub} partition {partition} in {files.description}"
        self._probes: dict[str, _Probe | None] = {}  # a written Capture file never changes
        self._empty_sizes: set[int] = set()
        self._last_enqueued: tuple[int, datetime | None] | None = None
        self._closed = False

    # -- construction

    @classmethod
    def from_directory(cls, root: str | os.PathLike[str], **kwargs: Any) -> CaptureSource:
        """Files under ``root``, named as Capture names blobs."""
        return cls(DirectoryFiles(root), **kwargs)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, container: str, *, retry_seconds: float = 60.0, **kwargs: Any
    ) -> CaptureSource:
        """Files in ``container`` of the account the connection string names.

        Transient errors are retried by the SDK for about ``retry_seconds``
        (``--retry-seconds``; :meth:`statepump.storage.containers.SdkRetry.within`).
        """
        opened = _open(container, retry_seconds, connection_string=connection_string)
        return cls(BlobFiles(opened.client), **kwargs)

    @classmethod
    def from_account_url(
        cls, account_url: str, container: str, credential: Any = None, *, retry_seconds: float = 60.0, **kwargs: Any
    ) -> CaptureSource:
        """Files in ``container`` at ``account_url``, signed in with ``credential``
        (default, even with a SAS token in the URL: ``azure.identity.aio.DefaultAzureCredential``,
        closed with the source)."""
        opened = _open(container, retry_seconds, account_url=account_url, credential=credential, identity_with_sas=True)
        return cls(BlobFiles(opened.client, credential=opened.owned_credential), **kwargs)

    def set_time_hint(self, when: datetime | None) -> None:
        """The enqueued time near which the next :meth:`read` will start."""
        self.time_hint = when

    # -- the source contract

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        return self._last_enqueued

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.files.close()

    async def bounds(self) -> PartitionBounds:
        """The first and last sequence numbers in Capture (``first=0, last=-1`` when none).

        Cost: one listing of the partition's prefix, a read of the first
        :data:`PROBE_BYTES` of the first non-empty file, and a read of the
        last :data:`PROBE_BYTES` of the last non-empty file (more only if its
        last block is larger), plus one small read per empty file passed on
        the way. The numbers come from the first and last *blocks*, which is
        exact when records are in order within a file (as in every file
        observed); ``read`` checks order and contiguity regardless.
        """
        files = await self._list()
        first: int | None = None
        for f in files:
            probe = await self._probe(f)
            if probe is not None and probe.first is not None:
                first = probe.first
                break
        if first is None:
            return PartitionBounds(0, -1)
        for f in reversed(files):
            tail = await self._last_block(f)
            if tail:
                last = max(tail, key=lambda e: e.sequence)
                self._last_enqueued = (last.sequence, last.enqueued_time)
                return PartitionBounds(first, last.sequence, last.enqueued_time)
        raise AssertionError("a file with a first block has a last block")

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        """Batches of the events after ``after`` that Capture holds, in order, then the end.

        Locating the start: the files are sorted by the window time in their
        names. With a time hint, reading starts at the last file whose window
        opened at or before it, stepping back a file while that file's first
        record is past ``after + 1`` (names carry the window's *open* time,
        not the events') and forward while the next file's first record is
        not; without one, a binary search over the files' first records.
        Each step reads one file's first :data:`PROBE_BYTES`.

        Raises :class:`SequenceGapError` when the files skip numbers, and
        :class:`~statepump.core.captureformat.CaptureFormatError` for a file that is not
        a Capture file (both name the file).
        """
        files = await self._list()
        start = await self._locate(files, after + 1)
        want = after + 1
        # If Capture begins after ``want``, the source contract lets the read
        # begin at its first event; the fold (or plan) sees that gap.
        begin = await self._first_from(files, start)
        expected = want if begin is None or begin <= want else begin
        heap: list[tuple[int, int, Event]] = []  # (sequence, arrival, event): arrival breaks ties
        tie = 0
        last_file = ""
        batch: list[Event] = []
        for f in files[start:]:
            before_file = expected
            async for events in self._blocks(f):
                if (
                    not heap
                    and events
                    and events[0].sequence == expected
                    and events[-1].sequence == expected + len(events) - 1
                    and [e.sequence for e in events] == list(range(expected, expected + len(events)))
                ):
                    # The common case: the next events, in order; no heap needed.
                    batch.extend(events)
                    expected += len(events)
                    events = []
                for event in events:
                    seq = event.sequence
                    if seq < expected:
                        continue  # before the start, or a duplicate
                    if seq == expected and not heap:
                        batch.append(event)
                        expected += 1
                        continue
                    tie += 1
                    heapq.heappush(heap, (seq, tie, event))
                    if len(heap) > self.max_reorder:
                        raise SequenceGapError(
                            expected,
                            heap[0][0],
                            where=f"in {self.description}: more than {self.max_reorder} events "
                            f"arrived without it, in {f.name}",
                        )
                    while heap and heap[0][0] <= expected:
                        seq0, _, ev0 = heapq.heappop(heap)
                        if seq0 == expected:
                            batch.append(ev0)
                            expected += 1
                if len(batch) >= self.batch_size:
                    self._seen(batch[-1])
                    yield batch
                    batch = []
            if heap:
                # Every event of this file must continue the sequence by its end.
                raise SequenceGapError(
                    expected,
                    heap[0][0],
                    where=f"in {self.description}: "
                    + (f"{last_file} ends at {expected - 1} and " if last_file else "")
                    + f"{f.name} holds {heap[0][0]}",
                )
            if expected > before_file:
                last_file = f.name
            if batch:
                self._seen(batch[-1])
                yield batch
                batch = []

    # -- internals

    def _seen(self, event: Event) -> None:
        known = self._last_enqueued
        if known is None or known[0] < event.sequence:
            self._last_enqueued = (event.sequence, event.enqueued_time)

    async def _list(self) -> list[_File]:
        if self._closed:
            raise RuntimeError(f"{self.description}: the source is closed")
        prefix = name_prefix(self.name_format, self.namespace, self.eventhub, self.partition)
        found: list[tuple[CaptureName, StoredFile]] = []
        for stored in await self.files.list_files(prefix):
            parsed = parse_name(self.name_format, stored.name)
            if parsed is None:
                continue  # not a Capture file name (a marker, another format)
            if (parsed.namespace, parsed.eventhub, parsed.partition_id) != (
                self.namespace,
                self.eventhub,
                self.partition,
            ):
                continue
            found.append((parsed, stored))
        found.sort(key=lambda p: (p[0].window_open, p[1].name))
        return [_File(s.name, s.size, n.window_open) for n, s in found]

    async def _probe(self, f: _File) -> _Probe | None:
        """The header and first block's lowest sequence number of ``f``; ``None`` if the file is gone."""
        if f.name in self._probes:
            return self._probes[f.name]
        if f.size in self._empty_sizes:
            # Exactly the size of a header-only file: empty too. A file with a block is
            # longer than any header that differs only in codec or schema version.
            return _Probe(AvroHeader(b"", b"", "null"), None)
        length = PROBE_BYTES
        while True:
            try:
                data = await self.files.read_range(f.name, 0, min(length, f.size) or length)
            except FileNotFoundError:
                log.warning("%s: %s disappeared", self.description, f.name)
                return None
            header = parse_header(data, name=f.name)
            complete = len(data) >= f.size
            if header is not None:
                end = parse_block(data, len(header.raw), header.sync, name=f.name)
                if end is not None:
                    events = decode_block(header, data[len(header.raw) : end], self.partition, name=f.name)
                    probe = _Probe(header, min((e.sequence for e in events), default=None))
                    break
                if complete and len(data) == len(header.raw):
                    probe = _Probe(header, None)
                    self._empty_sizes.add(f.size)
                    break
            if complete:
                raise CaptureFormatError(f"{f.name}: the file ends inside its header or first block (truncated?)")
            length *= 4
        self._probes[f.name] = probe
        return probe

    async def _first_of(self, files: list[_File], i: int) -> int | None:
        probe = await self._probe(files[i])
        return None if probe is None else probe.first

    async def _first_from(self, files: list[_File], i: int) -> int | None:
        """The first record of the first non-empty file at or after ``i``."""
        for j in range(i, len(files)):
            first = await self._first_of(files, j)
            if first is not None:
                return first
        return None

    async def _locate(self, files: list[_File], want: int) -> int:
        """The index of the file to start reading at: the last non-empty file
        whose first record is at most ``want`` (0 if there is none).

        A binary search over the files' first records (which only grow from
        file to file), whose first probes follow the time hint when there is
        one: the hinted file, then galloping forward or back from it (1, 2,
        4, ... files) until the answer is bracketed. A good hint costs two
        probes, a bad one about twice a plain binary search.
        """

        async def probe_from(i: int, hi: int) -> tuple[int, bool | None]:
            """The first non-empty file at or after ``i`` (below ``hi``), and
            whether it starts at or before ``want`` (``None``: all empty)."""
            for j in range(i, hi):
                first = await self._first_of(files, j)
                if first is not None:
                    return j, first <= want
            return hi, None

        lo, hi, best = 0, len(files), 0
        guess: int | None = None
        if self.time_hint is not None and files:
            opens = [f.window_open for f in files]
            guess = max(0, bisect.bisect_right(opens, self.time_hint) - 1)
        step = 1
        seen: set[bool] = set()
        while lo < hi:
            mid = guess if guess is not None and lo <= guess < hi and len(seen) < 2 else (lo + hi) // 2
            j, ok = await probe_from(mid, hi)
            if ok:
                best, lo = j, j + 1
            else:
                hi = mid
            seen.add(bool(ok))
            if guess is not None:
                guess = j + step if ok else mid - step
                step *= 2
        return best

    async def _blocks(self, f: _File) -> AsyncIterator[list[Event]]:
        """The events of ``f``, a block at a time, in the file's order."""
        if f.size in self._empty_sizes or (f.name in self._probes and self._probes[f.name] is None):
            return
        probe = self._probes.get(f.name)
        if probe is not None and probe.first is None:
            return
        splitter = BlockSplitter(f.name)
        position = 0
        group: list[bytes] = []
        grouped = 0
        try:
            async for chunk in self.files.chunks(f.name):
                blocks = splitter.feed(chunk)
                # Decode neighbouring small blocks together: one fastavro reader per
                # group instead of per block, memory still bounded by GROUP_BYTES.
                for i in range(len(blocks)):
                    group.append(blocks[i])
                    grouped += len(blocks[i])
                    if grouped >= GROUP_BYTES or i == len(blocks) - 1:
                        data = b"".join(group)
                        group.clear()
                        grouped = 0
                        events = decode_block(splitter.header, data, self.partition, name=f.name, position=position)
                        position += len(events)
                        yield events
        except FileNotFoundError:
            log.warning("%s: %s disappeared while reading", self.description, f.name)
            return
        splitter.finish()

    async def _last_block(self, f: _File) -> list[Event]:
        """The events of the last block of ``f``, read from its end."""
        probe = await self._probe(f)
        if probe is None or probe.first is None:
            return []
        header = probe.header
        length = PROBE_BYTES
        while True:
            offset = max(0, f.size - length)
            try:
                tail = await self.files.read_range(f.name, offset, f.size - offset)
            except FileNotFoundError:
                return []
            if offset == 0:
                tail = tail[len(header.raw) - SYNC_SIZE :]  # from the header's sync marker on
            start = last_block_start(tail, header.sync, name=f.name)
            if start is not None:
                return decode_block(header, tail[start:], self.partition, name=f.name)
            if offset == 0:
                raise CaptureFormatError(f"{f.name}: no complete last block found (truncated?)")
            length *= 4
