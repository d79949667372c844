"""CaptureSource over real files: a local directory, and Azurite's Blob service.

Every test that takes the ``backend`` fixture runs twice, once per place the
files can be; the Blob run starts Azurite (tests/fixtures/azurite.py).
"""

from __future__ import annotations

import io
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob.aio import ContainerClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devservices.azurite import Azurite
from statepump.core.captureformat import (
    CAPTURE_SCHEMA,
    DEFAULT_NAME_FORMAT,
    CaptureFormatError,
    render_name,
    write_capture_file,
)
from statepump.core.errors import SequenceGapError
from statepump.core.events import Event
from statepump.sources import EventSource
from statepump.sources.capture import CaptureFiles, CaptureSource, DirectoryFiles, StoredFile

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def ev(seq: int, when: datetime | None = None) -> Event:
    return Event("0", seq, str(seq * 100), when or T0 + timedelta(seconds=seq), None, {"n": seq}, f"b{seq}".encode())


def capture_bytes(events: Iterable[Event], codec: Any = "null") -> bytes:
    buf = io.BytesIO()
    write_capture_file(buf, events, codec=codec)
    return buf.getvalue()


def service_bytes(seqs: Iterable[int]) -> bytes:
    """A file as the real service writes it: .NET times, `null` in Properties, no x-opt-enqueued-time."""
    buf = io.BytesIO()
    records = [
        {
            "SequenceNumber": s,
            "Offset": str(4295015048 + s),
            "EnqueuedTimeUtc": "3/1/2024 12:00:00 PM",
            "SystemProperties": {},
            "Properties": {"n": s, "gone": None},
            "Body": f"b{s}".encode(),
        }
        for s in seqs
    ]
    fastavro.writer(buf, fastavro.parse_schema(CAPTURE_SCHEMA), records)
    return buf.getvalue()


class Backend:
    """Where the test puts files, and a source reading them."""

    kind: str

    async def put(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def source(self, **kwargs: Any) -> CaptureSource:
        raise NotImplementedError

    async def put_window(
        self, index: int, events: Iterable[Event] | bytes, codec: Any = "null", fmt: str = DEFAULT_NAME_FORMAT
    ) -> str:
        name = render_name(fmt, "ns", "hub", "0", T0 + index * WINDOW)
        await self.put(name, events if isinstance(events, bytes) else capture_bytes(events, codec))
        return name


class DirBackend(Backend):
    kind = "dir"

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def source(self, **kwargs: Any) -> CaptureSource:
        kwargs.setdefault("namespace", "ns")
        kwargs.setdefault("eventhub", "hub")
        kwargs.setdefault("partition", "0")
        return CaptureSource.from_directory(self.root, **kwargs)


class BlobBackend(Backend):
    kind = "blob"

    def __init__(self, client: ContainerClient, connection_string: str, container: str) -> None:
        self.client = client
        self.connection_string = connection_string
        self.container = container

    async def put(self, name: str, data: bytes) -> None:
        await self.client.upload_blob(name, data)

    def source(self, **kwargs: Any) -> CaptureSource:
        kwargs.setdefault("namespace", "ns")
        kwargs.setdefault("eventhub", "hub")
        kwargs.setdefault("partition", "0")
        return CaptureSource.from_connection_string(self.connection_string, self.container, **kwargs)


@pytest.fixture(params=["dir", pytest.param("blob", marks=pytest.mark.azurite)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "dir":
        yield DirBackend(tmp_path)
        return
    azurite: Azurite = request.getfixturevalue("azurite")  # sync, session-wide
    container = f"capture{uuid.uuid4().hex}"
    async with ContainerClient.from_connection_string(azurite.connection_string, container) as client:
        await client.create_container()
        try:
            yield BlobBackend(client, azurite.connection_string, container)
        finally:
            await client.delete_container()


async def read_all(source: EventSource, after: int = -1) -> list[Event]:
    return [e async for batch in source.read(after) for e in batch]


async def seqs(source: EventSource, after: int = -1) -> list[int]:
    return [e.sequence for e in await read_all(source, after)]


# --------------------------------------------------------------------------- both backends


async def test_reads_across_files_with_empty_files_and_both_codecs(backend: Backend) -> None:
    await backend.put_window(0, [ev(i) for i in range(0, 40)])
    await backend.put_window(1, [])  # an empty window
    await backend.put_window(2, [ev(i) for i in range(40, 90)], codec="deflate")
    await backend.put_window(3, [])
    await backend.put_window(4, [ev(i) for i in range(90, 100)])
    source = backend.source(batch_size=16)
    try:
        events = await read_all(source)
        assert [e.sequence for e in events] == list(range(100))
        assert [e.body for e in events[:2]] == [b"b0", b"b1"]
        assert events[57].properties == {"n": 57}
        assert events[57].enqueued_time == T0 + timedelta(seconds=57)
        assert source.last_enqueued == (99, T0 + timedelta(seconds=99))
        bounds = await source.bounds()
        assert (bounds.first, bounds.last, bounds.last_enqueued_time) == (0, 99, T0 + timedelta(seconds=99))
    finally:
        await source.close()


@pytest.mark.parametrize("after", [-1, 0, 39, 40, 41, 88, 89, 98, 99, 150])
async def test_read_after_any_position(backend: Backend, after: int) -> None:
    await backend.put_window(0, [ev(i) for i in range(0, 40)])
    await backend.put_window(1, [])
    await backend.put_window(2, [ev(i) for i in range(40, 90)], codec="deflate")
    await backend.put_window(3, [ev(i) for i in range(90, 100)])
    for hint in (None, T0, T0 + 2 * WINDOW, T0 + 99 * WINDOW):
        source = backend.source(time_hint=hint)
        try:
            assert await seqs(source, after) == list(range(after + 1, 100)), f"hint {hint}"
        finally:
            await source.close()


async def test_service_written_files(backend: Backend) -> None:
    await backend.put_window(0, service_bytes(range(5)))
    await backend.put_window(1, service_bytes([]))
    await backend.put_window(2, service_bytes(range(5, 8)))
    source = backend.source()
    try:
        events = await read_all(source)
        assert [e.sequence for e in events] == list(range(8))
        assert all(e.enqueued_time == T0 for e in events)
        assert events[6].properties == {"n": 6, "gone": None}
        assert events[6].offset == str(4295015048 + 6)
    finally:
        await source.close()


async def test_missing_file_is_a_gap_naming_the_range_and_files(backend: Backend) -> None:
    first = await backend.put_window(0, [ev(i) for i in range(0, 10)])
    await backend.put_window(1, [ev(i) for i in range(10, 20)])
    # window 2 (20..29) is missing
    third = await backend.put_window(3, [ev(i) for i in range(30, 40)])
    source = backend.source(batch_size=5)
    got: list[int] = []

    async def drain() -> None:
        async for batch in source.read(-1):
            got.extend(e.sequence for e in batch)

    try:
        with pytest.raises(SequenceGapError) as info:
            await drain()
        assert got == list(range(20)), "everything before the gap is delivered"
        assert (info.value.expected, info.value.got, info.value.last_missing) == (20, 30, 29)
        assert "events 20..29 are missing" in str(info.value)
        assert third in str(info.value)
        assert first not in str(info.value)
        # reading from past the gap is fine
        assert await seqs(source, 29) == list(range(30, 40))
    finally:
        await source.close()


async def test_bounds_of_nothing(backend: Backend) -> None:
    source = backend.source()
    try:
        bounds = await source.bounds()
        assert bounds.empty
        assert (bounds.first, bounds.last) == (0, -1)
        assert await seqs(source) == []
        await backend.put_window(0, [])
        await backend.put_window(1, [])
        assert (await source.bounds()).empty
        assert await seqs(source) == []
    finally:
        await source.close()


async def test_bounds_skip_empty_files_at_both_ends(backend: Backend) -> None:
    await backend.put_window(0, [])
    await backend.put_window(1, [ev(i) for i in range(500, 520)])
    await backend.put_window(2, [ev(i) for i in range(520, 530)], codec="deflate")
    await backend.put_window(3, [])
    source = backend.source()
    try:
        bounds = await source.bounds()
        assert (bounds.first, bounds.last) == (500, 529)
        # Capture starts after `after + 1`: the read starts at Capture's first event.
        assert await seqs(source, 10) == list(range(500, 530))
    finally:
        await source.close()


async def test_other_partitions_hubs_and_foreign_names_are_ignored(backend: Backend) -> None:
    await backend.put_window(0, [ev(i) for i in range(3)])
    await backend.put(render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "1", T0), capture_bytes([ev(100)]))
    await backend.put(render_name(DEFAULT_NAME_FORMAT, "ns", "hub2", "0", T0), capture_bytes([ev(200)]))
    await backend.put("ns/hub/0/README.txt", b"not a capture file")
    await backend.put("ns/hub/0/2024/03/01/12/00/00.avro.tmp", b"partial")
    source = backend.source()
    try:
        assert await seqs(source) == [0, 1, 2]
    finally:
        await source.close()


async def test_custom_name_format(backend: Backend) -> None:
    fmt = "capture/{Year}-{Month}-{Day}/{Namespace}_{EventHub}_{PartitionId}_{Hour}{Minute}{Second}"
    await backend.put_window(1, [ev(i) for i in range(5, 9)], fmt=fmt)
    await backend.put_window(0, [ev(i) for i in range(0, 5)], fmt=fmt)
    source = backend.source(name_format=fmt)
    try:
        assert await seqs(source) == list(range(9))
        assert await seqs(source, 6) == [7, 8]
    finally:
        await source.close()


# --------------------------------------------------------------------------- the directory, in detail


class CountingFiles(DirectoryFiles):
    """The real directory adapter, counting what it is asked for."""

    def __init__(self, root: Path, chunk: int | None = None) -> None:
        super().__init__(root)
        self.ranges: list[str] = []
        self.streamed: list[str] = []
        self.bytes_streamed = 0
        self.chunk = chunk

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        self.ranges.append(name)
        return await super().read_range(name, offset, length)

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        self.streamed.append(name)
        async for chunk in super().chunks(name):
            step = self.chunk or len(chunk)
            for i in range(0, len(chunk), step):
                self.bytes_streamed += len(chunk[i : i + step])
                yield chunk[i : i + step]


def counting_source(files: CaptureFiles, **kwargs: Any) -> CaptureSource:
    return CaptureSource(files, namespace="ns", eventhub="hub", partition="0", **kwargs)


async def put_many(root: Path, windows: int, per: int) -> list[str]:
    """``windows`` files of ``per`` events, each event enqueued inside its file's window."""
    backend = DirBackend(root)
    return [
        await backend.put_window(
            w, [ev(i, T0 + w * WINDOW + timedelta(seconds=i % per)) for i in range(w * per, (w + 1) * per)]
        )
        for w in range(windows)
    ]


@pytest.mark.parametrize("hinted", [True, False])
async def test_locating_the_start_reads_few_files(tmp_path: Path, hinted: bool) -> None:
    """Two probes with a good hint, a binary search without."""
    names = await put_many(tmp_path, windows=64, per=50)
    files = CountingFiles(tmp_path)
    # Event 2_024 (the snapshot's) is the 24th of window 40's file.
    hint = T0 + 40 * WINDOW + timedelta(seconds=24) if hinted else None
    source = counting_source(files, time_hint=hint)
    try:
        assert await seqs(source, 2_024) == list(range(2_025, 3_200))
    finally:
        await source.close()
    assert files.streamed == names[40:], "only the file holding 2025 and those after it are streamed"
    assert len(set(files.ranges)) <= (2 if hinted else 7), files.ranges


async def test_hint_later_than_the_file_steps_back(tmp_path: Path) -> None:
    # Window 1 opened at T0+5min but holds events enqueued much later (a backfill):
    # a hint pointing past it must step back to it.
    backend = DirBackend(tmp_path)
    await backend.put_window(0, [ev(i) for i in range(0, 10)])
    late = T0 + timedelta(hours=3)
    await backend.put_window(1, [ev(i, late) for i in range(10, 20)])
    await backend.put_window(2, [ev(i, late) for i in range(20, 30)])
    files = CountingFiles(tmp_path)
    source = counting_source(files, time_hint=late)
    try:
        assert await seqs(source, 14) == list(range(15, 30))
    finally:
        await source.close()
    assert files.streamed[0].endswith("12/05/00.avro")


async def test_out_of_order_records_and_duplicates(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    await backend.put_window(0, [ev(i) for i in (3, 0, 2, 1, 4, 4, 5)])
    await backend.put_window(1, [ev(i) for i in (5, 6, 4, 8, 7)])  # overlaps the previous file
    await backend.put_window(2, [ev(i) for i in (7, 8, 9)])
    source = counting_source(DirectoryFiles(tmp_path))
    try:
        assert await seqs(source) == list(range(10))
        assert await seqs(source, 4) == list(range(5, 10))
    finally:
        await source.close()


async def test_gap_inside_a_file(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    name = await backend.put_window(0, [ev(i) for i in (0, 1, 2, 5, 6)])
    source = counting_source(DirectoryFiles(tmp_path))
    try:
        with pytest.raises(SequenceGapError, match=r"events 3\.\.4 are missing") as info:
            await read_all(source)
        assert name in str(info.value)
    finally:
        await source.close()


async def test_reorder_bound(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    await backend.put_window(0, [ev(i) for i in [*range(1, 50), 0]])
    ok = counting_source(DirectoryFiles(tmp_path), max_reorder=100)
    tight = counting_source(DirectoryFiles(tmp_path), max_reorder=10)
    try:
        assert await seqs(ok) == list(range(50))
        with pytest.raises(SequenceGapError, match="more than 10 events arrived without it"):
            await read_all(tight)
    finally:
        await ok.close()
        await tight.close()


async def test_streams_a_big_file_a_block_at_a_time(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    name = await backend.put_window(0, (ev(i) for i in range(50_000)), codec="deflate")
    size = (tmp_path / name).stat().st_size
    files = CountingFiles(tmp_path, chunk=16 * 1024)
    source = counting_source(files, batch_size=100)
    try:
        reader = source.read(-1).__aiter__()
        first = await reader.__anext__()
        assert first[0].sequence == 0
        assert files.bytes_streamed < size / 4, "the first batch came before most of the file was read"
        count = len(first) + sum([len(b) async for b in reader])
        assert count == 50_000
        assert files.bytes_streamed == size
    finally:
        await source.close()


async def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    data = capture_bytes((ev(i) for i in range(5_000)), codec="deflate")
    name = await backend.put_window(0, data[: len(data) - 100])
    source = counting_source(DirectoryFiles(tmp_path))
    try:
        with pytest.raises(CaptureFormatError, match=rf"{name}: the file ends inside a block"):
            await read_all(source)
    finally:
        await source.close()


async def test_not_an_avro_file_names_the_file(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    name = await backend.put_window(0, b"PK\x03\x04 a zip, not avro")
    source = counting_source(DirectoryFiles(tmp_path))
    try:
        with pytest.raises(CaptureFormatError, match=rf"{name}: not an Avro object-container file"):
            await read_all(source)
        with pytest.raises(CaptureFormatError, match=name):
            await source.bounds()
    finally:
        await source.close()


async def test_a_file_deleted_after_listing_is_a_gap(tmp_path: Path) -> None:
    names = await put_many(tmp_path, windows=3, per=10)

    class Vanishing(DirectoryFiles):
        async def list_files(self, prefix: str) -> list[StoredFile]:
            listed = await super().list_files(prefix)
            (tmp_path / names[1]).unlink(missing_ok=True)  # retention on the container, right now
            return listed

    source = counting_source(Vanishing(tmp_path))
    try:
        with pytest.raises(SequenceGapError, match=r"events 10\.\.19 are missing"):
            await read_all(source)
    finally:
        await source.close()


async def test_last_block_found_from_the_end_of_a_big_file(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    await backend.put_window(0, (ev(i) for i in range(30_000)))  # several MB, many blocks
    files = CountingFiles(tmp_path)
    source = counting_source(files)
    try:
        bounds = await source.bounds()
        assert (bounds.first, bounds.last) == (0, 29_999)
        assert files.streamed == [], "bounds never streams a whole file"
    finally:
        await source.close()


async def test_closed_source_refuses(tmp_path: Path) -> None:
    source = counting_source(DirectoryFiles(tmp_path))
    await source.close()
    with pytest.raises(RuntimeError, match="closed"):
        await source.bounds()


async def test_description_holds_no_secret() -> None:
    key = "c2VjcmV0c2VjcmV0c2VjcmV0"
    conn = f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={key};BlobEndpoint=http://127.0.0.1:1/dev;"
    source = CaptureSource.from_connection_string(conn, "c", namespace="n", eventhub="h", partition="0")
    sas = CaptureSource.from_account_url(
        "http://127.0.0.1:1/dev?sv=2024-01-01&sig=SIGNATURE",
        "c",
        credential=AzureNamedKeyCredential("dev", key),
        namespace="n",
        eventhub="h",
        partition="0",
    )
    try:
        assert key not in source.description
        assert "http://127.0.0.1:1/dev/c" in source.description
        assert "SIGNATURE" not in sas.description
        assert key not in sas.description
    finally:
        await source.close()
        await sas.close()


# --------------------------------------------------------------------------- random layouts

layouts = st.lists(st.integers(0, 6), min_size=1, max_size=25)  # events per window, 0 = empty file


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts, data=st.data())
async def test_any_layout_any_start_any_hint(
    tmp_path_factory: pytest.TempPathFactory, layout: list[int], data: st.DataObject
) -> None:
    """Whatever the files, the position and the hint (good, bad or none): the
    read returns exactly the events after the position, and streams no file
    before the one that holds the next event."""
    root = tmp_path_factory.mktemp("layout")
    backend = DirBackend(root)
    seq = 0
    spans: list[tuple[int, int]] = []
    for window, count in enumerate(layout):
        when = T0 + window * WINDOW
        await backend.put_window(window, [ev(s, when + timedelta(seconds=s - seq)) for s in range(seq, seq + count)])
        spans.append((seq, seq + count - 1))
        seq += count
    after = data.draw(st.integers(-1, seq + 1), label="after")
    hint = data.draw(
        st.none() | st.integers(-2, len(layout) + 2).map(lambda w: T0 + w * WINDOW + timedelta(seconds=1)),
        label="hint",
    )
    files = CountingFiles(root)
    source = counting_source(files, time_hint=hint)
    try:
        assert await seqs(source, after) == list(range(after + 1, seq))
    finally:
        await source.close()
    # The read starts at the last non-empty file starting at or before after + 1, and
    # streams every non-empty file from there (known-empty ones need no download).
    names = [render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "0", T0 + w * WINDOW) for w in range(len(layout))]
    start = max((w for w, (first, last) in enumerate(spans) if last >= first and first <= after + 1), default=0)
    assert set(files.streamed) <= set(names[start:])
    assert {names[w] for w in range(start, len(layout)) if layout[w]} <= set(files.streamed)


async def test_memory_stays_flat_while_reading_a_big_file(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    name = await backend.put_window(0, (ev(i) for i in range(80_000)))
    size = (tmp_path / name).stat().st_size
    source = counting_source(DirectoryFiles(tmp_path, chunk_size=64 * 1024), batch_size=500)
    count = 0
    tracemalloc.start()
    try:
        async for batch in source.read(-1):
            count += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await source.close()
    assert count == 80_000
    assert size > 8_000_000
    assert peak < size / 3, f"peak {peak:,} bytes while reading a {size:,}-byte file"
