"""Damaged snapshots in Blob, and writers SIGKILLed mid-write: ``statepump run`` never starts from a bad one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import freeze

from devservices.azurite import Azurite
from devservices.emulator import EmulatorProcess
from statepump.core import codec
from statepump.core.configops import config
from statepump.core.events import Event, Version
from statepump.core.fold import fold
from statepump.core.markup import markup
from statepump.stores import SnapshotStore
from statepump.stores.blob import BlobStore
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.reliability.replay import read_everything, replay, send
from tests.reliability.sidecar import Sidecar, clean_environment, poll_until

pytestmark = pytest.mark.emulator


def version_at(events: list[Event], sequence: int) -> Version[Any]:
    v = fold(initial_version(config, "0"), events[: sequence + 1], config, applied_at=datetime.now(UTC)).version
    assert v.sequence == sequence
    return v


def damaged(good: bytes, how: str) -> bytes:
    if how == "corrupted":
        mid = len(good) - 5  # inside the payload: the checksum catches it
        return good[:mid] + bytes([good[mid] ^ 0x40]) + good[mid + 1 :]
    if how == "truncated":
        return good[: len(good) * 2 // 3]
    if how == "wrong-format":
        return b'{"format": "json", "state": {"a": "not a statepump snapshot"}}'
    raise AssertionError(how)


def forged(sequence: int, *, reducer: str = "config", eventhub: str = "hub") -> bytes:
    """A valid file whose state is wrong on purpose: used, it would serve a wrong configuration."""
    now = datetime.now(UTC)
    meta = codec.SnapshotMeta(eventhub, "0", sequence, now, reducer, 1, now, sequence + 1)
    return codec.encode(meta, freeze({"forged": True}))


async def test_damaged_and_foreign_snapshots_in_blob_are_passed_over_for_the_next_usable_one(
    emulator_process: Callable[..., EmulatorProcess], azurite: Azurite, blob_container: str, tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, [b'{"op":"set","path":"k/%d","value":%d}' % (i % 31, i) for i in range(300)])
    events = await read_everything(hub.connection_string)
    store = BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0")
    async with store:
        for good in (99, 199):
            await write_snapshot(store, version_at(events, good), config, eventhub="hub", events_folded=good + 1)
        good_bytes = await store.read((await store.list())[-1])
        bad = {
            209: damaged(good_bytes, "corrupted"),
            219: damaged(good_bytes, "truncated"),
            229: damaged(good_bytes, "wrong-format"),
            239: forged(239, reducer=markup.name),  # another reducer's state
            249: forged(249, eventhub="other-hub"),  # another hub's state
            259: forged(250),  # content says 250, name says 259
        }
        for sequence, data in bad.items():
            await store.write(sequence, data)
        assert [r.sequence for r in await store.list()] == [99, 199, *bad]

    flags = [
        "--connection-string",
        hub.connection_string,
        "--snapshot-container",
        blob_container,
        "--storage-connection-string",
        azurite.connection_string,
    ]
    with Sidecar(flags, tmp_path) as car:
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 299, "event 299 to be applied")
        assert status["snapshot_sequence"] == 199
        assert status["snapshots_rejected"] == len(bad)
        assert status["events_from_hub"] == 100  # 200..299: the good snapshot, then the hub
        assert car.state() == replay(events)
        log = car.log()
        for sequence, why in [
            (209, "checksum"),
            (219, "truncated"),
            (229, "bad magic"),
            (239, "markup@1"),
            (249, "other-hub"),
            (259, "holds sequence 250"),
        ]:
            line = next((x for x in log.splitlines() if f"{sequence:020d}" in x and "not used" in x), "")
            assert why in line, f"snapshot {sequence}: {line!r}"
        assert car.terminate() == 0


async def _all_usable(store: SnapshotStore) -> list[int]:
    found = []
    for ref in await store.list():
        codec.decode(await store.read(ref))  # raises SnapshotCorrupt on a partial file
        found.append(ref.sequence)
    await store.close()
    return found


def snapshotter(flags: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snapshotter", *flags],
            stdout=out,
            stderr=out,
            env=clean_environment(),
            start_new_session=True,
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


EVENTS = 40
LAST = EVENTS - 1


def big_event(i: int) -> bytes:
    return b'{"op":"set","path":"k/%d","value":"%s"}' % (i, b"%d" % i * (300_000 // len(b"%d" % i)))


async def test_snapshotter_killed_while_writing_never_leaves_a_usable_partial_snapshot(
    emulator_process: Callable[..., EmulatorProcess],
    azurite: Azurite,
    blob_container: str,
    tmp_path: Path,
) -> None:
    hub = emulator_process(None)
    # About 12 MB of state in few events: encoding and writing take long enough to be interrupted,
    # catching up does not.
    for start in range(0, EVENTS, 4):
        send(hub.connection_string, [big_event(i) for i in range(start, start + 4)])
    events = await read_everything(hub.connection_string)
    snapshots = tmp_path / "snapshots"
    stores: dict[str, tuple[list[str], Callable[[], SnapshotStore]]] = {
        "directory": (["--snapshot-dir", str(snapshots)], lambda: DirectoryStore(snapshots, "hub", "0")),
        "blob": (
            ["--snapshot-container", blob_container, "--storage-connection-string", azurite.connection_string],
            lambda: BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0"),
        ),
    }
    for where, (store_flags, store) in stores.items():
        flags = ["--connection-string", hub.connection_string, *store_flags, "--log-level", "INFO"]
        log = tmp_path / f"snapshotter-{where}.log"
        caught_mid_write = 0
        # Caught up to written takes about 0.3 s here (encode, then one 12 MB put): kill inside it.
        for delay in (0.08, 0.2) if where == "blob" else (0.0, 0.0, 0.0):
            if where == "directory" and caught_mid_write:
                break
            process = snapshotter(flags, log)
            try:

                def caught_up(p: subprocess.Popen[bytes] = process, log: Path = log) -> bool:
                    return "caught up at" in log.read_text() or p.poll() is not None

                poll_until(caught_up, 120, "catch-up")
                log.write_text("")  # the next attempt looks for its own line
                if where == "directory":
                    # Kill the moment a temporary file exists: the writer is mid-write.
                    deadline = time.monotonic() + 30
                    directory = snapshots / "snapshots" / "hub" / "0"
                    while time.monotonic() < deadline and process.poll() is None:
                        if directory.exists() and any(n.endswith(".tmp") for n in os.listdir(directory)):
                            _kill(process)
                            caught_mid_write += 1
                            break
                else:
                    deadline = time.monotonic() + delay
                    while time.monotonic() < deadline:
                        pass  # a precise, short delay into the encode/upload
                    _kill(process)
                    caught_mid_write += "wrote" not in log.read_text()  # after catching up, before the write ended
            finally:
                _kill(process)
            assert await _all_usable(store()) in ([], [LAST]), f"a killed writer left a partial snapshot ({where})"
        assert caught_mid_write >= 1, f"no kill landed while the snapshot was being written ({where})"

        # A later run succeeds, and the sidecar starts from what it wrote.
        finished = snapshotter(flags, log)
        try:
            assert finished.wait(120) == 0, log.read_text()
        finally:
            _kill(finished)
        assert await _all_usable(store()) == [LAST]
        with Sidecar(["--connection-string", hub.connection_string, *store_flags], tmp_path, name=where) as car:
            status = car.wait_status(lambda s: s["ready"] and s["sequence"] == LAST, "the last event to be applied")
            assert status["snapshot_sequence"] == LAST and status["events_applied"] == 0
            assert car.state() == replay(events)
            assert car.terminate() == 0
