"""DirectoryStore: the conformance suite, plus what only a directory can get wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statepump.core.errors import ConfigError, SnapshotExists
from statepump.stores import SnapshotStore
from statepump.stores.directory import DirectoryStore
from tests.stores.conformance import SnapshotStoreConformance, StoreFactory

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestDirectoryStore(SnapshotStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        async def make(eventhub: str = "hub", partition: str = "0", prefix: str = "snapshots") -> SnapshotStore:
            return DirectoryStore(tmp_path, eventhub, partition, prefix)

        return make


def temp_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp")) if directory.exists() else []


def wait_for(condition: object, what: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def start_writer(root: Path, sequence: int, size: int, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stores.directory_writer", str(root), str(sequence), str(size), *flags],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


async def test_writer_killed_before_publishing_leaves_only_an_unlisted_temp_file(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    size = 32 * 1024 * 1024
    proc = start_writer(tmp_path, 9, size, "--hold-before-publish")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "writing\n"
        assert proc.stdout.readline() == "holding\n"
    finally:
        kill(proc)
    leftovers = temp_files(store.directory)
    assert len(leftovers) == 1
    assert leftovers[0].stat().st_size == size
    assert await store.list() == []

    # The next writer of the same number is not blocked by the leftover.
    ref = await store.write(9, b"complete")
    assert [r.sequence for r in await store.list()] == [9]
    assert await store.read(ref) == b"complete"


async def test_writer_killed_at_any_moment_never_exposes_a_partial_snapshot(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    size = 64 * 1024 * 1024
    proc = start_writer(tmp_path, 11, size)
    try:
        wait_for(lambda: temp_files(store.directory) or any(store.directory.glob("*.snapshot")), "the writer")
    finally:
        kill(proc)
    listed = await store.list()
    # Whatever moment the kill hit, a listed snapshot is whole.
    assert listed == [] or [(r.sequence, r.size) for r in listed] == [(11, size)]
    for ref in listed:
        assert await store.read(ref) == b"\x5a" * size


async def test_stale_temp_files_are_cleaned_but_fresh_and_locked_ones_are_kept(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0", stale_temp_after=60)
    proc = start_writer(tmp_path, 3, 1024, "--hold-before-publish")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "writing\n"
        assert proc.stdout.readline() == "holding\n"
        (live,) = temp_files(store.directory)
        old = time.time() - 3600
        os.utime(live, (old, old))
        # Old but still locked by its living writer: kept.
        assert await store.remove_stale_temp_files() == ()
        assert live.exists()
    finally:
        kill(proc)
    fresh = store.directory / ".00000000000000000004.snapshot.feed.tmp"
    fresh.write_bytes(b"recent")
    # Old and unlocked (the writer is dead): removed. Fresh: kept.
    assert await store.remove_stale_temp_files() == (live.name,)
    assert not live.exists()
    assert fresh.exists()
    assert await store.list() == []


async def test_successful_and_refused_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await store.write(1, b"a")
    with pytest.raises(SnapshotExists):
        await store.write(1, b"b")
    assert temp_files(store.directory) == []
    assert sorted(p.name for p in store.directory.iterdir()) == ["00000000000000000001.snapshot"]


async def test_files_that_are_not_snapshots_are_ignored(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await store.write(5, b"five")
    for stray in ("notes.txt", "123.snapshot", "0000000000000000000x.snapshot", "00000000000000000006.snapshot.bak"):
        (store.directory / stray).write_bytes(b"junk")
    (store.directory / "00000000000000000007.snapshot").mkdir()
    assert [r.sequence for r in await store.list()] == [5]


async def test_layout_on_disk(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "config", "3", prefix="snaps")
    ref = await store.write(12, b"x")
    assert ref.name == "snaps/config/3/00000000000000000012.snapshot"
    assert (tmp_path / ref.name).read_bytes() == b"x"
    assert store.description == f"directory {tmp_path / 'snaps/config/3'}"


@pytest.mark.parametrize(
    ("eventhub", "partition", "prefix"),
    [("", "0", "s"), ("hub", "", "s"), ("..", "0", "s"), ("hub", "a/b", "s"), ("hub", "0", "a/../b")],
)
def test_names_that_would_leave_the_directory_are_refused(eventhub: str, partition: str, prefix: str) -> None:
    with pytest.raises(ConfigError):
        DirectoryStore(Path("/nonexistent"), eventhub, partition, prefix)
