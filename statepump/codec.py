"""The snapshot file format: one self-describing binary file per version.

Layout (all integers big-endian)::

    magic      8 bytes   b"STPSNAP\\x00"
    format     u16       1
    meta_len   u32       length of the metadata
    meta       msgpack   map: eventhub, partition, sequence, enqueued_time,
                         reducer, reducer_version, created_at, events_folded,
                         codec, payload_length, payload_sha256
    sig_len    u16       0, or 32 for an HMAC-SHA256
    sig        bytes     HMAC-SHA256(key, magic + format + meta_len + meta)
    payload    bytes     the state, msgpack (optionally zlib-compressed)

The signature covers the metadata, and the metadata holds the payload's
SHA-256, so one HMAC authenticates the whole file; the checksum alone (no key)
catches truncation and corruption.

The state is encoded with msgpack: ``PMap`` as a msgpack map and ``PVector``
as an array (decoded straight back into ``pmap``/``pvector`` by msgpack's hooks,
which keeps the file exactly as small as msgpack of the equivalent plain
``dict`` and decodes without a second pass), ``PSet`` as ext type 1. A state
is pyrsistent throughout, so every map and array in a snapshot is a ``PMap`` or
a ``PVector``; a plain ``dict`` or ``list`` inside a state comes back frozen.
Timestamps are ISO 8601 strings: msgpack's own timestamp type would come
back naive or as its own class, and these are read by humans in ``inspect``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import chain
from typing import Any

import msgpack
from pyrsistent import PMap, PSet, PVector, pmap, pset, pvector

from statepump.errors import SnapshotCorrupt

MAGIC = b"STPSNAP\x00"
FORMAT = 1
CODECS = ("msgpack", "msgpack+zlib")
_HEAD = struct.Struct(">8sHI")
_SIG_LEN = struct.Struct(">H")
_EXT_PSET = 1
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

    @property
    def reducer_identity(self) -> str:
        return f"{self.reducer}@{self.reducer_version}"


def _map_items(m: PMap[Any, Any]) -> dict[Any, Any]:
    # PMap's public iteration goes through Python-level generators; its
    # bucket vector holds the (key, value) pairs and iterates in C, which
    # makes encoding a 1,000,000-key map several times faster (bench/figures/snapshot.py).
    return dict(chain.from_iterable(filter(None, m._buckets.tolist())))


# Exact types first: isinstance() against pyrsistent's ABCs costs more than
# the conversion itself for the many small maps and vectors of a state.
_PMAP_TYPE: type = type(pmap())
_PVECTOR_TYPE: type = type(pvector())


def _default(obj: object) -> object:
    kind = type(obj)
    if kind is _PMAP_TYPE:
        return _map_items(obj)  # type: ignore[arg-type]
    if kind is _PVECTOR_TYPE:
        return obj.tolist()  # type: ignore[attr-defined]
    if isinstance(obj, PMap):
        return _map_items(obj)
    if isinstance(obj, PVector):
        return obj.tolist()
    if isinstance(obj, PSet):
        return msgpack.ExtType(_EXT_PSET, msgpack.packb(list(obj), default=_default))
    raise TypeError(f"cannot store a {type(obj).__name__} in a snapshot (state must be pyrsistent and JSON-like)")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_PSET:
        return pset(_unpack(data))
    raise SnapshotCorrupt(f"unknown msgpack ext type {code} in snapshot payload")


# Small maps and vectors up to this many entries are shared when equal (below).
_SHARE_UP_TO = 16


# Types whose == is exact within the type (unlike float's 0.0 == -0.0).
_PLAIN = frozenset({str, int, bool, type(None), bytes})


def _atom(value: object) -> object:
    """A key for ``value`` that equals another's only if the two are interchangeable.

    ``1 == 1.0 == True`` and ``0.0 == -0.0``, so the type is part of the key
    and floats compare by their exact bits. Containers were already made
    canonical by this decode, so their identity stands for their content.
    """
    kind = value.__class__
    if kind is float:
        return (kind, value.hex())  # type: ignore[attr-defined]
    if kind is _PMAP_TYPE or kind is _PVECTOR_TYPE or isinstance(value, PSet):
        return (kind, id(value))
    return (kind, value)


class _Sharing:
    """msgpack hooks that build each distinct small map or vector once per decode.

    A state is immutable, so equal sub-values can be one object: configuration
    repeats the same small objects (``{"enabled": true, "limit": 100}``) across
    many keys, and each distinct one is then held once. A pyrsistent map or
    vector costs several times a dict or list of the same content (each
    vector has a 32-slot node), which is what keeps a 1,000,000-key state
    within twice the memory of the same dict (``bench/figures/memory.py``).
    Big containers are not looked up: they are rarely repeated.
    """

    def __init__(self) -> None:
        self.maps: dict[tuple[object, ...], PMap[Any, Any]] = {}
        self.vectors: dict[tuple[object, ...], PVector[Any]] = {}

    def map(self, d: dict[Any, Any]) -> PMap[Any, Any]:
        n = len(d)
        if n > _SHARE_UP_TO:
            # A bucket per key rather than pmap()'s two: fewer bucket lists and a
            # smaller vector; PMap grows it when keys are added.
            return pmap(d, pre_size=n)
        # _atom() inlined for the usual str/int/bool/None: this runs for every small map.
        key = tuple(
            [
                (
                    k.__class__,
                    k if k.__class__ in _PLAIN else _atom(k),
                    v.__class__,
                    v if v.__class__ in _PLAIN else _atom(v),
                )
                for k, v in d.items()
            ]
        )
        found = self.maps.get(key)
        if found is None:
            found = self.maps[key] = pmap(d, pre_size=max(n, 1))
        return found

    def vector(self, items: list[Any]) -> PVector[Any]:
        if len(items) > _SHARE_UP_TO:
            return pvector(items)
        key = tuple([(v.__class__, v if v.__class__ in _PLAIN else _atom(v)) for v in items])
        found = self.vectors.get(key)
        if found is None:
            found = self.vectors[key] = pvector(items)
        return found


def _unpack(data: bytes) -> Any:
    sharing = _Sharing()
    return msgpack.unpackb(
        data,
        object_hook=sharing.map,
        list_hook=sharing.vector,
        ext_hook=_ext_hook,
        strict_map_key=False,
        raw=False,
    )


def encode_state(state: object) -> bytes:
    """The msgpack payload for a pyrsistent state (uncompressed).

    >>> encode_state(pmap({"a": 1})) == msgpack.packb({"a": 1})
    True
    """
    if isinstance(state, PMap) and len(state) >= _FLAT_FROM:
        return _encode_large_map(state)
    return msgpack.packb(state, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


# A msgpack map is its header followed by key, value, key, value... So a big
# top-level map is packed as one flat array of its keys and values, with the
# array header swapped for a map header: the pairs go from the bucket vector
# to msgpack in C, without the intermediate dict (1.2× to 1.3× less CPU for
# 1,000,000 keys in bench/figures/snapshot.py). The bytes are identical.
_FLAT_FROM = 1024


def _encode_large_map(state: PMap[Any, Any]) -> bytes:
    flat = list(chain.from_iterable(chain.from_iterable(filter(None, state._buckets.tolist()))))
    body: bytes = msgpack.packb(flat, default=_default, use_bin_type=True)
    array_header = len(msgpack.Packer().pack_array_header(len(flat)))
    return msgpack.Packer().pack_map_header(len(flat) // 2) + body[array_header:]  # type: ignore[no-any-return]


def decode_state(payload: bytes) -> Any:
    """The inverse of :func:`encode_state`. Raises :class:`SnapshotCorrupt` on any malformed payload."""
    try:
        return _unpack(payload)
    except SnapshotCorrupt:
        raise
    except Exception as exc:  # msgpack raises many types for malformed input
        raise SnapshotCorrupt(f"snapshot payload does not decode: {type(exc).__name__}: {exc}") from None


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


def _meta_from_wire(wire: object, signed: bool) -> SnapshotMeta:
    if not isinstance(wire, dict):
        raise SnapshotCorrupt("snapshot metadata is not a map")
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
    )


def encode(meta: SnapshotMeta, state: object, *, compress: bool = False, hmac_key: bytes | None = None) -> bytes:
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
    if fmt != FORMAT:
        raise SnapshotCorrupt(f"snapshot format {fmt} is not supported (this statepump reads format {FORMAT})")
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
    """Verify a snapshot file and return its metadata and state.

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
    return meta, decode_state(raw)
