"""Random and mutated snapshot and Capture files: a clear error every time, never a wrong state.

Complements ``tests/core/test_codec.py`` (single truncations and byte flips) and
``tests/capture/`` with compound mutations, and checks the property that matters
to a pump: a file either yields exactly what was written, or is refused with
the module's own error type.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrsistent import freeze

from statepump.core import codec
from statepump.core.captureformat import CaptureFormatError, read_capture_file, write_capture_file
from statepump.core.configops import config
from statepump.core.errors import SnapshotCorrupt
from statepump.core.events import Event
from statepump.stores import SnapshotRef, snapshot_name
from statepump.stores.snapshots import check

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STATE = freeze({"markup": {"tshirt": 0.03, "jeans": [1, 2, {"x": None}]}, "on": True, "name": "ü" * 40})
META = codec.SnapshotMeta("hub", "0", 4242, T, config.name, config.version, T, 4243)
REF = SnapshotRef(4242, snapshot_name("snapshots", "hub", "0", 4242))
FILES = {
    "plain": codec.encode(META, STATE),
    "compressed": codec.encode(META, STATE, compress=True),
    "signed": codec.encode(META, STATE, hmac_key=b"k" * 32),
}

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` after 1-4 random edits: flips, overwrites, insertions, deletions, truncation, duplication."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


def outcome_of(work: Callable[[], object], expected: type[Exception]) -> object:
    """What ``work`` returned, or the ``expected`` error it raised (any other exception fails the test)."""
    try:
        return work()
    except expected as exc:
        return exc


def used_by_a_pump(data: bytes, hmac_key: bytes | None = None) -> object:
    """What :func:`statepump.stores.snapshots.load_latest` would start from: the state, or SnapshotCorrupt."""
    meta, state = codec.decode(data, hmac_key=hmac_key)
    check(meta, REF, config, "hub", "0")
    assert meta.sequence == 4242  # check() guarantees the name and the content agree
    return state


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused_as_snapshot_corrupt(data: bytes) -> None:
    with pytest.raises(SnapshotCorrupt):
        codec.decode(data)


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(FILES)))
def test_a_mutated_snapshot_is_refused_or_yields_exactly_the_written_state(data: st.DataObject, which: str) -> None:
    damaged = data.draw(mutated(FILES[which]))
    key = b"k" * 32 if which == "signed" else None
    outcome = outcome_of(lambda: used_by_a_pump(damaged, key), SnapshotCorrupt)
    # Refused saying why, or only harmless bytes (e.g. created_at, events_folded) were changed.
    assert outcome == STATE or (isinstance(outcome, SnapshotCorrupt) and str(outcome)), outcome


@FUZZ
@given(data=st.data())
def test_a_signed_snapshot_with_any_change_to_its_head_or_payload_is_refused(data: st.DataObject) -> None:
    original = FILES["signed"]
    damaged = data.draw(mutated(original))
    if damaged == original:
        return
    with pytest.raises(SnapshotCorrupt):
        codec.decode(damaged, hmac_key=b"k" * 32)


def capture_file(count: int, codec_name: str) -> tuple[bytes, list[Event]]:
    events = [
        Event("0", n, str(n * 100), T, None, {"k": n, "s": "v"}, b'{"op":"set","path":"a","value":%d}' % n)
        for n in range(count)
    ]
    buffer = io.BytesIO()
    write_capture_file(buffer, events, codec=codec_name)  # type: ignore[arg-type]
    return buffer.getvalue(), events


CAPTURE = {name: capture_file(300, name) for name in ("null", "deflate")}


def read_all(data: bytes) -> list[Event]:
    return list(read_capture_file(io.BytesIO(data), "0", name="fuzzed.avro"))


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused_as_a_capture_format_error(data: bytes) -> None:
    outcome = outcome_of(lambda: read_all(data), CaptureFormatError)
    # Refused naming the file, or (a valid, empty container) no events.
    assert outcome == [] or (isinstance(outcome, CaptureFormatError) and "fuzzed.avro" in str(outcome)), outcome


@FUZZ
@given(data=st.data(), codec_name=st.sampled_from(["null", "deflate"]))
def test_a_mutated_capture_file_raises_only_capture_format_error(data: st.DataObject, codec_name: str) -> None:
    original, _ = CAPTURE[codec_name]
    damaged = data.draw(mutated(original))
    outcome = outcome_of(lambda: read_all(damaged), CaptureFormatError)
    assert isinstance(outcome, list) or "fuzzed.avro" in str(outcome)


@FUZZ
@given(cut=st.integers(0, len(CAPTURE["deflate"][0]) - 1), codec_name=st.sampled_from(["null", "deflate"]))
def test_a_truncated_capture_file_yields_a_prefix_of_its_events_then_an_error(cut: int, codec_name: str) -> None:
    original, events = CAPTURE[codec_name]
    cut = min(cut, len(original) - 1)
    got: list[Event] = []

    def read_prefix() -> None:
        got.extend(read_capture_file(io.BytesIO(original[:cut]), "0", name="fuzzed.avro"))

    outcome = outcome_of(read_prefix, CaptureFormatError)
    # Cut inside a block: an error after the whole blocks. Cut at a block's end: a shorter file.
    assert isinstance(outcome, CaptureFormatError) or outcome is None
    assert got == events[: len(got)]  # never an altered or invented event
    if len(got) == len(events):
        assert cut >= len(original) - 16, "only a cut inside the final sync marker may keep every event"
