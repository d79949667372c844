"""The snapshot file format: one self-describing binary file per version.

Layout (all integers big-endian)::

    magic      8 bytes   b"STPSNAP\\x00"
    format     u16       3 (1 and 2 are still read)
    meta_len   u32       length of the metadata
    meta       msgpack   map: eventhub, partition, sequence, enqueued_time,
                         reducer, reducer_version, created_at, events_folded,
                         codec, payload_length, payload_sha256,
                         schema (format 3: the --schema identity or nil),
                         changed_length (format 3: bytes of the record, 0: none)
    sig_len    u16       0, or 32 for an HMAC-SHA256
    sig        bytes     HMAC-SHA256(key, magic + format + meta_len + meta)
    payload    bytes     the state, msgpack, then (format 3) the record of when
                         each path last changed (Version.changed), the last
                         changed_length bytes; the whole optionally zlib-compressed

The record (:mod:`statepump.core.lastchanged`) is ``[floor, top, deep]`` in
the state's encoding. A format 1 or 2 snapshot has none: the version loaded
from it has ``changed=None``, and the fold then takes its sequence as the
floor (every path last changed at or before it).

The signature covers the metadata, and the metadata holds the payload's
SHA-256, so one HMAC authenticates the whole file; the checksum alone (no key)
catches truncation and corruption.

The payload is msgpack, every pyrsistent container an ext type whose data is
the msgpack of its content:

* a map or vector of up to 16 entries (ext 2, 3): the content as a msgpack
  map or array. Configuration repeats small values, and the decoder builds
  each distinct encoding once and shares it (``_Decoder``);
* a larger map (ext 4): an array ``k0, v0, k1, v1, ...`` taken from the
  bucket vector, built back bucket by bucket (``_build_map``); a larger
  vector (ext 5): an array; a ``PSet`` (ext 1): an array.

A state is pyrsistent throughout, so a plain ``dict`` or ``list`` inside a
state comes back frozen. The file is within a few percent of msgpack of the
equivalent plain ``dict`` (each small container costs 2-3 header bytes) and
decodes a 1,000,000-key state about twice as fast as format 1, which stored
plain msgpack maps and arrays and is still read.
Timestamps are ISO 8601 strings: msgpack's own timestamp type would come
back naive or as its own class, and these are read by humans in ``inspect``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
import zlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import msgpack
from pyrsistent import PMap, PSet, PVector, freeze, pmap, pset, pvector

from statepump.core.errors import SnapshotCorrupt
from statepump.core.lastchanged import LastChanged
from statepump.core.pyrsistent_internals import map_from_flat, map_pairs

MAGIC = b"STPSNAP\x00"
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
CODECS = ("msgpack", "msgpack+zlib")
_HEAD = struct.Struct(">8sHI")
_SIG_LEN = struct.Struct(">H")
# msgpack ext type codes of the payload (format 2).
_EXT_PSET = 1
_EXT_SMALL_MAP = 2
_EXT_SMALL_VECTOR = 3
_EXT_MAP = 4
_EXT_VECTOR = 5
# Metadata is small; a "length" beyond this is corruption, not a big header.
_MAX_META = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot says about itself (readable without decoding the state)."""

    eventhub: str
    partition: str
    sequence: int
    enqueued_time: datetime | None
    reducer: str
    reducer_version: int
    created_at: datetime
    events_folded: int
    codec: str = "msgpack"
    payload_length: int = 0
    payload_sha256: str = ""
    signed: bool = False
    #: The identity of the JSON Schema the state was folded under (``--schema``), or ``None``.
    schema: str | None = None
    changed_length: int = 0

    @property
    def reducer_identity(self) -> str:
        return f"{self.reducer}@{self.reducer_version}"


def _map_items(m: PMap[Any, Any]) -> dict[Any, Any]:
    return dict(map_pairs(m))


# Exact types first: isinstance() against pyrsistent's ABCs costs more than
# the conversion itself for the many small maps and vectors of a state.
_PMAP_TYPE: type = type(pmap())
_PVECTOR_TYPE: type = type(pvector())

# Maps and vectors of up to this many entries are "small": stored so that the
# decoder can share equal ones (see the payload format below).
_SMALL = 16


_ext = functools.partial(tuple.__new__, msgpack.ExtType)
"""``ExtType(code, data)`` without its Python-level argument checks, a third of the cost."""


def _plain(obj: object) -> object:
    """msgpack's ``default`` inside a small container and a set: maps and vectors as plain msgpack."""
    kind = type(obj)
    if kind is _PMAP_TYPE or (kind is not _PVECTOR_TYPE and isinstance(obj, PMap)):
        return _map_items(obj)  # type: ignore[arg-type]
    if kind is _PVECTOR_TYPE or isinstance(obj, PVector):
        return obj.tolist()  # type: ignore[attr-defined]
    if isinstance(obj, PSet):
        return _ext((_EXT_PSET, msgpack.packb(list(obj), default=_plain, use_bin_type=True)))
    raise TypeError(f"cannot store a {type(obj).__name__} in a snapshot (state must be pyrsistent and JSON-like)")


class _Encoder:
    """msgpack's ``default`` hook for one encode: each container becomes an ext of its packed content.

    Inside a small container, nested containers are plain msgpack maps and
    arrays (:func:`_plain`): the decoder shares the small one whole, so what is
    inside it is decoded once per distinct value and needs no ext of its own.
    A small container met again (the same object, as a decoded state shares
    them) reuses its ext.
    """

    def __init__(self) -> None:
        self.small_packer = msgpack.Packer(default=_plain, use_bin_type=True)
        self.small: dict[int, msgpack.ExtType] = {}

    def pack(self, value: object) -> bytes:
        return msgpack.packb(value, default=self.default, use_bin_type=True)  # type: ignore[no-any-return]

    def pack_flat(self, pairs: list[tuple[Any, Any]]) -> bytes:
        """``pairs`` as the array ``k0, v0, k1, v1, ...``.

        A msgpack map is its header, then key, value, key, value...: packing
        the pairs as a map and swapping the header for an array's gives the
        flat array without building a list twice the size first.
        """
        packer = msgpack.Packer(default=self.default, use_bin_type=True)
        body = packer.pack_map_pairs(pairs)
        skip = len(packer.pack_map_header(len(pairs)))
        return packer.pack_array_header(2 * len(pairs)) + body[skip:]  # type: ignore[no-any-return]

    def default(self, obj: object) -> object:
        kind = type(obj)
        if kind is _PMAP_TYPE or (kind is not _PVECTOR_TYPE and isinstance(obj, PMap)):
            if len(obj) > _SMALL:  # type: ignore[arg-type]
                return _ext((_EXT_MAP, self.pack_flat(map_pairs(obj))))  # type: ignore[arg-type]
            found = self.small.get(id(obj))
            if found is None:
                content = self.small_packer.pack_map_pairs(map_pairs(obj))  # type: ignore[arg-type]
                found = self.small[id(obj)] = _ext((_EXT_SMALL_MAP, content))
            return found
        if kind is _PVECTOR_TYPE or isinstance(obj, PVector):
            if len(obj) > _SMALL:  # type: ignore[arg-type]
                return _ext((_EXT_VECTOR, self.pack(obj.tolist())))  # type: ignore[attr-defined]
            found = self.small.get(id(obj))
            if found is None:
                content = self.small_packer.pack(obj.tolist())  # type: ignore[attr-defined]
                found = self.small[id(obj)] = _ext((_EXT_SMALL_VECTOR, content))
            return found
        return _plain(obj)  # a set, or the error for a foreign type


def _build_map(flat: list[Any]) -> PMap[Any, Any]:
    """The pmap of a ``[k0, v0, k1, v1, ...]`` array; a corrupt one (odd length) is reported."""
    if len(flat) % 2:
        raise SnapshotCorrupt("a map's key/value array has an odd number of items")
    return map_from_flat(flat)


class _Decoder:
    """The msgpack ext hook of one decode: builds pyrsistent values, sharing equal small ones.

    A state is immutable, so equal sub-values can be one object: configuration
    repeats the same small objects (``{"enabled": true, "limit": 100}``) across
    many keys, and each distinct one is then built and held once. A pyrsistent
    map or vector costs several times a dict or list of the same content,
    which is what keeps a 1,000,000-key state within twice the memory of the
    same dict (``bench/figures/memory.py``). Small values are looked up by
    their encoded bytes: equal bytes are the same value with the same types
    (``1``, ``1.0`` and ``True`` encode differently, as do ``0.0`` and
    ``-0.0``), and a repeated one is never decoded again.
    """

    def __init__(self) -> None:
        self.shared: tuple[dict[bytes, object], dict[bytes, object]] = ({}, {})

    def unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=self.ext, strict_map_key=False, raw=False, use_list=True)

    def ext(self, code: int, data: bytes) -> object:
        if code in (_EXT_SMALL_MAP, _EXT_SMALL_VECTOR):
            shared = self.shared[code == _EXT_SMALL_VECTOR]
            found = shared.get(data)
            if found is None:
                inner = self.unpack(data)
                if not isinstance(inner, list if code == _EXT_SMALL_VECTOR else dict):
                    raise SnapshotCorrupt(f"ext type {code} in the snapshot payload holds a {type(inner).__name__}")
                found = shared[data] = freeze(inner)
            return found
        if code == _EXT_MAP:
            return _build_map(self._array(data, "map"))
        if code == _EXT_VECTOR:
            return pvector(self._array(data, "vector"))
        if code == _EXT_PSET:
            return pset(freeze(self._array(data, "set")))  # its content is plain (see _plain)
        raise SnapshotCorrupt(f"unknown msgpack ext type {code} in snapshot payload")

    def _array(self, data: bytes, what: str) -> list[Any]:
        inner = self.unpack(data)
        if not isinstance(inner, list):
            raise SnapshotCorrupt(f"a {what} in the snapshot payload is not a msgpack array")
        return inner


def encode_state(state: object) -> bytes:
    """The msgpack payload for a pyrsistent state (uncompressed).

    >>> decode_state(encode_state(pmap({"a": pvector([1, 2])})))
    pmap({'a': pvector([1, 2])})
    """
    return _Encoder().pack(state)


def decode_state(payload: bytes, *, fmt: int = FORMAT) -> Any:
    """The inverse of :func:`encode_state` (or of format ``fmt``'s encoder).

    Raises :class:`SnapshotCorrupt` on any malformed payload.
    """
    try:
        if fmt == 1:
            return _unpack_format_1(payload)
        return _Decoder().unpack(payload)
    except SnapshotCorrupt:
        raise
    except Exception as exc:  # msgpack raises many types for malformed input
        raise SnapshotCorrupt(f"snapshot payload does not decode: {type(exc).__name__}: {exc}") from None


# --- format 1 (statepump 0.1), read so that an upgrade can start from an older snapshot ---
# Maps were msgpack maps and vectors msgpack arrays, rebuilt by hooks that
# shared equal small ones by a typed key.

# Types whose == is exact within the type (unlike float's 0.0 == -0.0).
_PLAIN = frozenset({str, int, bool, type(None), bytes})


def _atom(value: object) -> object:
    kind = value.__class__
    if kind is float:
        return (kind, value.hex())  # type: ignore[attr-defined]
    if kind is _PMAP_TYPE or kind is _PVECTOR_TYPE or isinstance(value, PSet):
        return (kind, id(value))  # containers are already canonical: identity stands for content
    return (kind, value)


def _unpack_format_1(payload: bytes) -> Any:
    maps: dict[tuple[object, ...], PMap[Any, Any]] = {}
    vectors: dict[tuple[object, ...], PVector[Any]] = {}

    def on_map(d: dict[Any, Any]) -> PMap[Any, Any]:
        if len(d) > _SMALL:
            return pmap(d, pre_size=len(d))
        key = tuple((k.__class__, _atom(k), v.__class__, _atom(v)) for k, v in d.items())
        found = maps.get(key)
        if found is None:
            found = maps[key] = pmap(d, pre_size=max(len(d), 1))
        return found

    def on_list(items: list[Any]) -> PVector[Any]:
        if len(items) > _SMALL:
            return pvector(items)
        key = tuple((v.__class__, _atom(v)) for v in items)
        found = vectors.get(key)
        if found is None:
            found = vectors[key] = pvector(items)
        return found

    def on_ext(code: int, data: bytes) -> object:
        if code == _EXT_PSET:
            return pset(_unpack_format_1(data))
        raise SnapshotCorrupt(f"unknown msgpack ext type {code} in snapshot payload")

    return msgpack.unpackb(
        payload, object_hook=on_map, list_hook=on_list, ext_hook=on_ext, strict_map_key=False, raw=False
    )


def _meta_to_wire(meta: SnapshotMeta) -> dict[str, Any]:
    wire = asdict(meta)
    del wire["signed"]  # derived from the file, not stored in it
    wire["enqueued_time"] = meta.enqueued_time.isoformat() if meta.enqueued_time else None
    wire["created_at"] = meta.created_at.isoformat()
    return wire


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "eventhub": str,
    "partition": str,
    "sequence": int,
    "enqueued_time": (str, type(None)),
    "reducer": str,
    "reducer_version": int,
    "created_at": str,
    "events_folded": int,
    "codec": str,
    "payload_length": int,
    "payload_sha256": str,
}


_OPTIONAL: dict[str, tuple[type | tuple[type, ...], object]] = {
    "schema": ((str, type(None)), None),
    "changed_length": (int, 0),
}


def _meta_from_wire(wire: object, signed: bool) -> SnapshotMeta:
    if not isinstance(wire, dict):
        raise SnapshotCorrupt("snapshot metadata is not a map")
    for key, (kind, _default) in _OPTIONAL.items():
        if key in wire and (not isinstance(wire[key], kind) or isinstance(wire[key], bool)):
            raise SnapshotCorrupt(f"snapshot metadata {key!r} has the wrong type ({type(wire[key]).__name__})")
    for key, kind in _REQUIRED.items():
        if key not in wire:
            raise SnapshotCorrupt(f"snapshot metadata lacks {key!r}")
        if not isinstance(wire[key], kind) or isinstance(wire[key], bool):
            raise SnapshotCorrupt(f"snapshot metadata {key!r} has the wrong type ({type(wire[key]).__name__})")
    try:
        enqueued = datetime.fromisoformat(wire["enqueued_time"]) if wire["enqueued_time"] else None
        created = datetime.fromisoformat(wire["created_at"])
    except ValueError as exc:
        raise SnapshotCorrupt(f"snapshot metadata has a bad timestamp: {exc}") from None
    if wire["codec"] not in CODECS:
        raise SnapshotCorrupt(f"snapshot codec {wire['codec']!r} is unknown (expected one of {', '.join(CODECS)})")
    return SnapshotMeta(
        eventhub=wire["eventhub"],
        partition=wire["partition"],
        sequence=wire["sequence"],
        enqueued_time=enqueued,
        reducer=wire["reducer"],
        reducer_version=wire["reducer_version"],
        created_at=created,
        events_folded=wire["events_folded"],
        codec=wire["codec"],
        payload_length=wire["payload_length"],
        payload_sha256=wire["payload_sha256"],
        signed=signed,
        schema=wire.get("schema", _OPTIONAL["schema"][1]),
        changed_length=max(0, wire.get("changed_length", 0)),
    )


def encode(
    meta: SnapshotMeta,
    state: object,
    *,
    compress: bool = False,
    hmac_key: bytes | None = None,
    changed: LastChanged | None = None,
) -> bytes:
    """A complete snapshot file for ``state``; ``meta``'s codec, length and checksum are filled in here.

    >>> from datetime import datetime, timezone
    >>> from pyrsistent import pmap
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> m = SnapshotMeta("hub", "0", 41, t, "config", 1, t, 42)
    >>> meta, state = decode(encode(m, pmap({"a": 1})))
    >>> (meta.sequence, state)
    (41, pmap({'a': 1}))
    """
    payload = encode_state(state)
    if changed is not None:
        changed = changed.merged()
    record = b"" if changed is None else encode_state(pvector([changed.floor, changed.top, changed.deep]))
    payload += record
    codec = "msgpack"
    if compress:
        payload = zlib.compress(payload, 1)
        codec = "msgpack+zlib"
    full = SnapshotMeta(
        **{
            **asdict(meta),
            "codec": codec,
            "payload_length": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "signed": hmac_key is not None,
            "changed_length": len(record),
        }
    )
    meta_bytes = msgpack.packb(_meta_to_wire(full), use_bin_type=True)
    head = _HEAD.pack(MAGIC, FORMAT, len(meta_bytes)) + meta_bytes
    sig = hmac.new(hmac_key, head, hashlib.sha256).digest() if hmac_key is not None else b""
    return b"".join((head, _SIG_LEN.pack(len(sig)), sig, payload))


def _split(data: bytes | memoryview) -> tuple[bytes, SnapshotMeta, bytes, memoryview]:
    view = memoryview(data)
    if len(view) < _HEAD.size:
        raise SnapshotCorrupt(f"not a statepump snapshot: only {len(view)} bytes")
    magic, fmt, meta_len = _HEAD.unpack_from(view)
    if magic != MAGIC:
        raise SnapshotCorrupt("not a statepump snapshot (bad magic bytes)")
    if fmt not in READABLE_FORMATS:
        raise SnapshotCorrupt(
            f"snapshot format {fmt} is not supported (this statepump reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))})"
        )
    if meta_len > _MAX_META or _HEAD.size + meta_len + _SIG_LEN.size > len(view):
        raise SnapshotCorrupt("snapshot is truncated inside its metadata")
    head_end = _HEAD.size + meta_len
    head = bytes(view[:head_end])
    (sig_len,) = _SIG_LEN.unpack_from(view, head_end)
    sig_start = head_end + _SIG_LEN.size
    if sig_start + sig_len > len(view):
        raise SnapshotCorrupt("snapshot is truncated inside its signature")
    sig = bytes(view[sig_start : sig_start + sig_len])
    try:
        wire = msgpack.unpackb(head[_HEAD.size :], raw=False)
    except Exception as exc:
        raise SnapshotCorrupt(f"snapshot metadata does not decode: {exc}") from None
    meta = _meta_from_wire(wire, signed=sig_len > 0)
    return head, meta, sig, view[sig_start + sig_len :]


def read_meta(data: bytes | memoryview) -> SnapshotMeta:
    """The metadata only, without verifying or decoding the payload (for listings)."""
    return _split(data)[1]


def decode(data: bytes | memoryview, *, hmac_key: bytes | None = None) -> tuple[SnapshotMeta, Any]:
    """Verify a snapshot file and return its metadata and state (:func:`decode_all` for the record too)."""
    meta, state, _changed = decode_all(data, hmac_key=hmac_key)
    return meta, state


def decode_all(
    data: bytes | memoryview, *, hmac_key: bytes | None = None
) -> tuple[SnapshotMeta, Any, LastChanged | None]:
    """Verify a snapshot file and return its metadata, its state and its record of last changes (or ``None``).

    >>> from datetime import datetime, timezone
    >>> from pyrsistent import pmap
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> record = LastChanged.since(-1).record(("a",), 3).record(("b", "c"), 4)
    >>> data = encode(SnapshotMeta("hub", "0", 4, t, "config", 1, t, 5), pmap({"a": 1}), changed=record)
    >>> meta, state, back = decode_all(data)
    >>> (back == record, back.at(("b",)), meta.changed_length > 0)
    (True, 4, True)

    With ``hmac_key``, a snapshot without a valid signature is refused: write
    access to the snapshot store alone must not be enough to inject a state.
    Every failure is a :class:`SnapshotCorrupt` naming what was wrong.
    """
    head, meta, sig, payload = _split(data)
    if hmac_key is not None:
        if not sig:
            raise SnapshotCorrupt("snapshot is not signed, and an HMAC key is configured")
        expected = hmac.new(hmac_key, head, hashlib.sha256).digest()
        if not hmac.compare_digest(sig, expected):
            raise SnapshotCorrupt("snapshot signature does not match the configured HMAC key")
    if len(payload) != meta.payload_length:
        raise SnapshotCorrupt(
            f"snapshot payload is {len(payload)} bytes but its metadata says {meta.payload_length} (truncated?)"
        )
    if hashlib.sha256(payload).hexdigest() != meta.payload_sha256:
        raise SnapshotCorrupt("snapshot payload checksum (SHA-256) does not match: the file was altered or damaged")
    raw = bytes(payload)
    if meta.codec == "msgpack+zlib":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise SnapshotCorrupt(f"snapshot payload does not decompress: {exc}") from None
    fmt = _HEAD.unpack_from(head)[1]
    cut = len(raw) - meta.changed_length if fmt >= 3 else len(raw)
    if cut < 0:
        raise SnapshotCorrupt(f"snapshot record of {meta.changed_length} bytes is longer than its payload")
    changed = _record(decode_state(raw[cut:])) if fmt >= 3 and meta.changed_length else None
    return meta, decode_state(raw[:cut], fmt=fmt), changed


def _record(value: object) -> LastChanged:
    if not isinstance(value, list | PVector) or len(value) != 3:
        raise SnapshotCorrupt("snapshot record of last changes is not [floor, top, deep]")
    floor, top, deep = value
    if type(floor) is not int or not isinstance(top, PMap) or not isinstance(deep, PMap):
        raise SnapshotCorrupt("snapshot record of last changes has the wrong types")
    return LastChanged(floor, top, deep)
