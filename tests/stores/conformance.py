"""The one behaviour every snapshot store must have.

A store adapter's test module subclasses :class:`SnapshotStoreConformance` and
overrides the ``make_store`` fixture with one that returns a factory of stores
sharing one backing location (a directory, a container), so that isolation
between partitions, event hubs and prefixes is tested on shared storage::

    class TestDirectoryStore(SnapshotStoreConformance):
        @pytest.fixture
        async def make_store(self, tmp_path):
            async def make(eventhub="hub", partition="0", prefix="snapshots"):
                return DirectoryStore(tmp_path, eventhub, partition, prefix)
            yield make

The class name does not start with ``Test`` so pytest collects it only
through its subclasses.

A read-only store (a relay's current snapshot) passes the reading half,
:class:`ReadOnlyStoreConformance`, and refuses writes and deletes as it
documents.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable
from typing import Protocol

import pytest

from statepump.core.errors import SnapshotExists
from statepump.stores import SnapshotRef, SnapshotStore, parse_sequence


class StoreFactory(Protocol):
    def __call__(
        self, eventhub: str = "hub", partition: str = "0", prefix: str = "snapshots"
    ) -> Awaitable[SnapshotStore]: ...


def payload(seed: int, size: int) -> bytes:
    """Deterministic, distinguishable bytes: a corrupted mix of two payloads shows."""
    return random.Random(seed).randbytes(size)


class SnapshotStoreConformance:
    """Subclass and override ``make_store``; every test here then runs against the adapter."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("a store test class must override the make_store fixture")

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> SnapshotStore:
        return await make_store()

    async def test_is_a_snapshot_store_with_a_description(self, store: SnapshotStore) -> None:
        assert isinstance(store, SnapshotStore)
        assert isinstance(store.description, str)
        assert store.description

    async def test_empty_store_lists_nothing(self, store: SnapshotStore) -> None:
        assert await store.list() == []

    async def test_write_then_list_and_read_round_trip(self, store: SnapshotStore) -> None:
        data = payload(1, 1000)
        ref = await store.write(42, data)
        assert ref.sequence == 42
        assert parse_sequence(ref.name) == 42
        assert ref.size == len(data)
        listed = await store.list()
        assert [(r.sequence, r.name, r.size) for r in listed] == [(42, ref.name, len(data))]
        assert await store.read(listed[0]) == data
        assert await store.read(ref) == data

    async def test_empty_payload_round_trips(self, store: SnapshotStore) -> None:
        ref = await store.write(0, b"")
        assert await store.read(ref) == b""
        assert [r.sequence for r in await store.list()] == [0]

    async def test_list_is_ordered_by_sequence_across_digit_counts(self, store: SnapshotStore) -> None:
        sequences = [0, 1, 9, 10, 99, 100, 1_000, 12_345, 999_999_999, 10**12, 10**19, 5, 42]
        shuffled = sequences[:]
        random.Random(7).shuffle(shuffled)
        for sequence in shuffled:
            await store.write(sequence, str(sequence).encode())
        listed = await store.list()
        assert [r.sequence for r in listed] == sorted(sequences)
        for ref in listed:
            assert await store.read(ref) == str(ref.sequence).encode()

    async def test_write_is_create_only(self, store: SnapshotStore) -> None:
        first, second = payload(1, 5000), payload(2, 6000)
        ref = await store.write(7, first)
        with pytest.raises(SnapshotExists) as raised:
            await store.write(7, second)
        assert ref.name in str(raised.value)
        assert await store.read(ref) == first
        assert [(r.sequence, r.size) for r in await store.list()] == [(7, len(first))]

    async def test_concurrent_writers_of_one_sequence_one_wins_whole(self, store: SnapshotStore) -> None:
        for sequence in range(100, 105):
            mine, theirs = payload(sequence, 2_000_000), payload(-sequence, 2_100_000)
            results = await asyncio.gather(
                store.write(sequence, mine), store.write(sequence, theirs), return_exceptions=True
            )
            refs = [r for r in results if isinstance(r, SnapshotRef)]
            losers = [r for r in results if isinstance(r, BaseException)]
            assert len(refs) == 1, results
            assert len(losers) == 1, results
            assert isinstance(losers[0], SnapshotExists), results
            stored = await store.read(refs[0])
            assert stored in (mine, theirs)
            assert refs[0].size == len(stored)
        assert [r.sequence for r in await store.list()] == list(range(100, 105))

    async def test_delete_removes_and_deleting_again_is_fine(self, store: SnapshotStore) -> None:
        keep = await store.write(1, b"one")
        gone = await store.write(2, b"two")
        await store.delete(gone)
        assert [r.sequence for r in await store.list()] == [1]
        await store.delete(gone)
        assert [r.sequence for r in await store.list()] == [1]
        assert await store.read(keep) == b"one"

    async def test_read_of_a_deleted_snapshot_raises_file_not_found(self, store: SnapshotStore) -> None:
        ref = await store.write(3, b"three")
        await store.delete(ref)
        with pytest.raises(FileNotFoundError):
            await store.read(ref)

    async def test_a_deleted_sequence_can_be_written_again(self, store: SnapshotStore) -> None:
        ref = await store.write(4, b"old")
        await store.delete(ref)
        again = await store.write(4, b"new")
        assert await store.read(again) == b"new"

    async def test_negative_sequence_is_refused(self, store: SnapshotStore) -> None:
        with pytest.raises(ValueError, match="-1"):
            await store.write(-1, b"x")

    async def test_partitions_event_hubs_and_prefixes_are_isolated(self, make_store: StoreFactory) -> None:
        # "1" and "10" share a string prefix: listing partition 1 must not see 10's.
        places = [
            ("hub", "0", "snapshots"),
            ("hub", "1", "snapshots"),
            ("hub", "10", "snapshots"),
            ("hub2", "0", "snapshots"),
            ("hub", "0", "other"),
            ("hub", "0", "nested/prefix"),
        ]
        stores = [await make_store(eventhub=h, partition=p, prefix=x) for h, p, x in places]
        for index, store in enumerate(stores):
            await store.write(50, f"place {index}".encode())
            await store.write(60 + index, f"own {index}".encode())
        for index, store in enumerate(stores):
            listed = await store.list()
            assert [r.sequence for r in listed] == [50, 60 + index], places[index]
            assert await store.read(listed[0]) == f"place {index}".encode()
            assert await store.read(listed[1]) == f"own {index}".encode()
        # Deleting in one place leaves the same sequence elsewhere alone.
        await stores[1].delete((await stores[1].list())[0])
        assert [r.sequence for r in await stores[2].list()] == [50, 62]
        assert [r.sequence for r in await stores[1].list()] == [61]

    async def test_a_ref_from_another_partition_is_refused(self, make_store: StoreFactory) -> None:
        one, two = await make_store(partition="1"), await make_store(partition="2")
        ref = await one.write(5, b"five")
        with pytest.raises(ValueError, match=ref.name):
            await two.read(ref)
        with pytest.raises(ValueError, match=ref.name):
            await two.delete(ref)
        assert await one.read(ref) == b"five"

    async def test_large_payload_round_trips(self, store: SnapshotStore) -> None:
        data = os.urandom(20 * 1024 * 1024)
        ref = await store.write(1_000_000, data)
        assert ref.size == len(data)
        assert [r.size for r in await store.list()] == [len(data)]
        assert await store.read(ref) == data


class SeededStore(Protocol):
    def __call__(self, sequence: int) -> Awaitable[tuple[SnapshotStore, bytes]]: ...


class ReadOnlyStoreConformance:
    """What a read-only store (a relay's snapshot, ``RelayStore``) must do: the reading half of the contract.

    Writing and deleting are the writer's (the snapshotter's) business, and a
    read-only store refuses both with one line naming itself, never pretends:
    a refused write leaves the listing as it was. Subclass and override
    ``seeded``: a factory of a store that holds a snapshot at ``sequence``,
    returning the store and the bytes it must read back.
    """

    @pytest.fixture
    def seeded(self) -> SeededStore:
        raise NotImplementedError("a read-only store test class must override the seeded fixture")

    async def test_is_a_snapshot_store_with_a_description(self, seeded: SeededStore) -> None:
        store, _ = await seeded(5)
        assert isinstance(store, SnapshotStore)
        assert isinstance(store.description, str)
        assert store.description

    async def test_lists_what_it_holds_and_reads_it_back(self, seeded: SeededStore) -> None:
        store, data = await seeded(42)
        listed = await store.list()
        assert [r.sequence for r in listed] == [42]
        assert parse_sequence(listed[0].name) == 42
        assert listed[0].size == len(data)
        assert await store.read(listed[0]) == data

    async def test_a_ref_it_does_not_hold_is_file_not_found(self, seeded: SeededStore) -> None:
        store, _ = await seeded(7)
        [ref] = await store.list()
        with pytest.raises(FileNotFoundError):
            await store.read(SnapshotRef(8, ref.name.replace(f"{7:020d}", f"{8:020d}")))

    async def test_writes_and_deletes_are_refused_with_one_line_and_change_nothing(self, seeded: SeededStore) -> None:
        store, data = await seeded(9)
        [ref] = await store.list()
        with pytest.raises(Exception, match="read-only") as refused:
            await store.write(10, b"x")
        assert "\n" not in str(refused.value) and store.description in str(refused.value)
        with pytest.raises(Exception, match="read-only"):
            await store.delete(ref)
        assert [r.sequence for r in await store.list()] == [9]
        assert await store.read((await store.list())[0]) == data
