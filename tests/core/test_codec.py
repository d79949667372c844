"""The snapshot file format: round trips, and refusal of anything damaged."""

from __future__ import annotations

import hashlib
import struct
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap, pset, pvector

from statepump.core import codec
from statepump.core.codec import SnapshotMeta, decode, encode, read_meta
from statepump.core.errors import SnapshotCorrupt
from tests.core.strategies import T0, pyrsistent_values

META = SnapshotMeta("hub", "0", 41, T0, "config", 1, T0, 42)


@given(pyrsistent_values, st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_nested_pyrsistent_value_round_trips_with_its_types(value: object, compress: bool) -> None:
    meta, back = decode(encode(META, value, compress=compress))
    assert back == value
    assert type(back) is type(value)
    assert meta.sequence == 41 and meta.codec == ("msgpack+zlib" if compress else "msgpack")


def test_nested_types_come_back_as_the_same_pyrsistent_types() -> None:
    state = pmap({"a": pvector([pmap({"b": pset([1, 2])}), 3]), 7: None, "bytes": b"\x00\xff"})
    _, back = decode(encode(META, state))
    assert back == state
    assert type(back["a"]) is type(pvector())
    assert type(back["a"][0]) is type(pmap())
    assert type(back["a"][0]["b"]) is type(pset())
    assert back[7] is None and back["bytes"] == b"\x00\xff"


def test_metadata_is_recorded_and_readable_without_the_payload() -> None:
    data = encode(META, pmap({"x": 1}))
    meta = read_meta(data[: len(data) - 3])  # metadata alone does not need the whole payload
    assert (meta.eventhub, meta.partition, meta.sequence, meta.enqueued_time) == ("hub", "0", 41, T0)
    assert (meta.reducer, meta.reducer_version, meta.events_folded, meta.created_at) == ("config", 1, 42, T0)
    assert meta.payload_sha256 == hashlib.sha256(codec.encode_state(pmap({"x": 1}))).hexdigest()


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_any_truncation_is_refused(data: st.DataObject) -> None:
    blob = encode(META, pmap({"k": pvector(range(50))}))
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(SnapshotCorrupt):
        decode(blob[:cut])


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_any_single_byte_change_is_refused_or_harmless(data: st.DataObject) -> None:
    state = pmap({"k": pvector(range(50)), "s": "text"})
    blob = bytearray(encode(META, state))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    try:
        _meta, back = decode(bytes(blob))
    except SnapshotCorrupt:
        return
    # A flip that still decodes can only have hit metadata the checksum does not cover
    # (e.g. a timestamp digit); the state itself is never wrong.
    assert back == state


def test_errors_say_what_is_wrong() -> None:
    good = encode(META, pmap({"a": 1}))
    with pytest.raises(SnapshotCorrupt, match="bad magic"):
        decode(b"PK\x03\x04" + good[4:])
    with pytest.raises(SnapshotCorrupt, match="format 9 is not supported"):
        decode(good[:8] + struct.pack(">H", 9) + good[10:])
    with pytest.raises(SnapshotCorrupt, match="truncated"):
        decode(good[:-1])
    with pytest.raises(SnapshotCorrupt, match="only 3 bytes"):
        decode(b"STP")
    tampered = bytearray(good)
    tampered[-1] ^= 1
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        decode(bytes(tampered))


def test_hmac_signed_snapshots_verify_and_others_are_refused() -> None:
    key = b"k" * 32
    signed = encode(META, pmap({"a": 1}), hmac_key=key)
    meta, state = decode(signed, hmac_key=key)
    assert meta.signed and state == pmap({"a": 1})
    with pytest.raises(SnapshotCorrupt, match="not signed"):
        decode(encode(META, pmap({"a": 1})), hmac_key=key)
    with pytest.raises(SnapshotCorrupt, match="signature does not match"):
        decode(signed, hmac_key=b"other key")
    # Rewriting the payload and its checksum, without the key, is caught by the signature.
    forged_payload = codec.encode_state(pmap({"a": 666}))
    forged = encode(META, pmap({"a": 666}))
    head_len = 8 + 2 + 4 + struct.unpack(">I", forged[10:14])[0]
    stolen_sig = signed[head_len : head_len + 2 + 32]
    with pytest.raises(SnapshotCorrupt, match="signature does not match"):
        decode(forged[:head_len] + stolen_sig + forged_payload, hmac_key=key)


def test_unknown_codec_and_bad_metadata_types_are_refused() -> None:
    good = encode(META, pmap({"a": 1}))
    meta_len = struct.unpack(">I", good[10:14])[0]
    wire = msgpack.unpackb(good[14 : 14 + meta_len])
    for change, message in (
        (("codec", "lz4"), "codec 'lz4' is unknown"),
        (("sequence", "41"), "'sequence' has the wrong type"),
    ):
        bad = dict(wire)
        bad[change[0]] = change[1]
        meta_bytes = msgpack.packb(bad)
        blob = good[:10] + struct.pack(">I", len(meta_bytes)) + meta_bytes + good[14 + meta_len :]
        with pytest.raises(SnapshotCorrupt, match=message):
            decode(blob)


def test_a_corrupt_compressed_payload_with_a_valid_checksum_is_refused() -> None:
    good = encode(META, pmap({"a": 1}), compress=True)
    meta_len = struct.unpack(">I", good[10:14])[0]
    wire = msgpack.unpackb(good[14 : 14 + meta_len])
    payload = b"not zlib at all"
    wire.update(payload_length=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    meta_bytes = msgpack.packb(wire)
    blob = good[:10] + struct.pack(">I", len(meta_bytes)) + meta_bytes + b"\x00\x00" + payload
    with pytest.raises(SnapshotCorrupt, match="does not decompress"):
        decode(blob)
    assert zlib.decompress(zlib.compress(b"x")) == b"x"


def test_a_state_with_a_foreign_type_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        encode(META, pmap({"a": object()}))
