"""Loading the newest usable snapshot, and what a snapshot plus the rest of the log gives."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statepump.core import codec
from statepump.core.configops import config
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import initial_version, load_latest, write_snapshot
from tests.core.strategies import T0, bodies, events_from


def replay(events: list, reducer: Reducer = config) -> object:  # type: ignore[type-arg]
    return fold(initial_version(reducer, "0"), events, reducer, applied_at=T0, policy="skip").version


@given(st.lists(bodies, min_size=1, max_size=40), st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_snapshot_plus_remaining_events_equals_full_replay(
    tmp_path: Path, body_list: list[bytes], data: st.DataObject
) -> None:
    events = events_from(body_list)
    cut = data.draw(st.integers(0, len(events) - 1))
    store = DirectoryStore(Path(tempfile.mkdtemp(dir=tmp_path)), "hub", "0")
    at_cut = fold(initial_version(config, "0"), events[: cut + 1], config, applied_at=T0, policy="skip").version
    await write_snapshot(store, at_cut, config, eventhub="hub", events_folded=cut + 1)
    loaded = await load_latest(store, config, eventhub="hub", partition="0")
    assert loaded.version.sequence == cut
    resumed = fold(loaded.version, events[cut + 1 :], config, applied_at=T0, policy="skip").version
    full = replay(events)
    assert resumed.state == full.state  # type: ignore[attr-defined]
    assert resumed.sequence == full.sequence  # type: ignore[attr-defined]


async def test_no_snapshot_gives_the_initial_version(tmp_path: Path) -> None:
    loaded = await load_latest(DirectoryStore(tmp_path, "hub", "0"), config, eventhub="hub", partition="0")
    assert loaded.version.sequence == -1 and loaded.ref is None and loaded.version.state == config.initial


async def _write(store: DirectoryStore, seq: int, value: int, reducer: Reducer = config) -> None:  # type: ignore[type-arg]
    body = f'{{"op":"set","path":"v","value":{value}}}'.encode()
    v = fold(initial_version(reducer, "0"), events_from([body] * (seq + 1)), reducer, applied_at=T0).version
    await write_snapshot(store, v, reducer, eventhub="hub", events_folded=seq + 1)


async def test_damaged_newer_snapshots_are_reported_and_the_next_older_is_used(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await _write(store, 10, 10)
    other = Reducer("config", 2, config.apply, config.initial)
    await _write(store, 20, 20, other)  # another reducer version
    good = codec.decode((tmp_path / "snapshots/hub/0/00000000000000000010.snapshot").read_bytes())[1]
    whole = codec.encode(codec.SnapshotMeta("hub", "0", 30, T0, "config", 1, T0, 1), good)
    await store.write(30, whole[: len(whole) // 2])  # truncated
    tampered = bytearray(codec.encode(codec.SnapshotMeta("hub", "0", 40, T0, "config", 1, T0, 1), good))
    tampered[-2] ^= 0xFF
    await store.write(40, bytes(tampered))
    wrong_partition = codec.encode(codec.SnapshotMeta("hub", "1", 50, T0, "config", 1, T0, 1), good)
    await store.write(50, wrong_partition)
    misnamed = codec.encode(codec.SnapshotMeta("hub", "0", 59, T0, "config", 1, T0, 1), good)
    await store.write(60, misnamed)

    loaded = await load_latest(store, config, eventhub="hub", partition="0")
    assert loaded.version.sequence == 10
    assert loaded.version.state["v"] == 10
    reasons = {r.ref.sequence: r.reason for r in loaded.rejected}
    assert set(reasons) == {20, 30, 40, 50, 60}
    assert "made by reducer config@2" in reasons[20]
    assert "truncated" in reasons[30]
    assert "checksum" in reasons[40]
    assert "partition '1'" in reasons[50]
    assert "named for sequence 60 holds sequence 59" in reasons[60]


async def test_a_signed_store_refuses_unsigned_snapshots(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    key = b"secret-key-material"
    v = fold(
        initial_version(config, "0"), events_from([b'{"op":"set","path":"a","value":1}']), config, applied_at=T0
    ).version
    await write_snapshot(store, v, config, eventhub="hub", events_folded=1, hmac_key=key)
    v2 = fold(v, events_from([b'{"op":"set","path":"a","value":666}'], start=1), config, applied_at=T0).version
    await write_snapshot(store, v2, config, eventhub="hub", events_folded=1)  # an attacker without the key
    loaded = await load_latest(store, config, eventhub="hub", partition="0", hmac_key=key)
    assert loaded.version.sequence == 0 and loaded.version.state["a"] == 1
    assert "not signed" in loaded.rejected[0].reason


async def test_a_snapshot_folded_under_another_schema_is_passed_over_and_the_record_comes_back(tmp_path: Path) -> None:
    from statepump.core.configops import config_reducer
    from statepump.core.schema import Schema

    store = DirectoryStore(tmp_path, "hub", "0")
    strict = config_reducer(Schema.from_document({"properties": {"v": {"type": "integer"}}}))
    loose = config_reducer(Schema.from_document({"properties": {"v": {"type": "number"}}}))
    await _write(store, 10, 10)  # no schema
    await _write(store, 20, 20, strict)
    await _write(store, 30, 30, loose)

    for reducer, newest, passed_over in ((strict, 20, {30}), (loose, 30, set()), (config, 10, {20, 30})):
        loaded = await load_latest(store, reducer, eventhub="hub", partition="0")
        assert loaded.version.sequence == newest and loaded.meta is not None and loaded.meta.schema == reducer.schema
        assert {r.ref.sequence for r in loaded.rejected} == passed_over
        assert all("folded under schema sha256:" in r.reason for r in loaded.rejected)
        # The record of last changes travels with the state: v last changed at the snapshot's event.
        assert loaded.version.changed is not None and loaded.version.changed.at(("v",)) == newest
