"""One partition's events: an append-only log, in memory or in a file.

Every event is kept in memory (this is a development emulator); with a file,
every append is also written, as one record, to ``partition-ID.log``::

    >IIqqq  payload length, CRC-32 of the rest, sequence, offset, enqueued ms
    payload the message as consumers receive it (see messages.stored_payload)

Appends are written (not fsynced) before the sender is told ``accepted``, so
the log survives the emulator being killed, not the machine losing power.
A record torn by a kill mid-write fails its length or CRC check on the next
load and is cut off, with everything after it.

Expiry (retention, or ``expire`` on demand) moves the partition's beginning.
The new beginning and the numbering to continue from are kept in
``partition-ID.meta`` (written atomically), so a fully expired partition keeps
its numbering; the log file is rewritten without the expired records once
they outweigh the kept ones.

>>> from statepump.emulator.messages import parse_event
>>> from statepump.emulator import wire
>>> log = PartitionLog("0")
>>> [r.sequence for r in log.append([parse_event(wire.encode_message(wire.Message(data=[b"x"])))] * 3, 1000)]
[0, 1, 2]
>>> log.expire(2)
2
>>> log.info().begin_sequence, log.info().last_sequence
(2, 2)
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

from statepump.emulator.messages import IncomingEvent, stored_payload
from statepump.emulator.positions import InvalidPosition, StartPosition

_RECORD: Final = struct.Struct(">IIqqq")
_BODY: Final = struct.Struct(">qqq")


@dataclass(frozen=True, slots=True)
class Record:
    """One enqueued event."""

    sequence: int
    offset: int
    enqueued_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """A partition's numbers, as ``$management`` reports them."""

    partition: str
    begin_sequence: int
    last_sequence: int
    last_offset: str
    last_enqueued_ms: int
    empty: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "begin_sequence_number": self.begin_sequence,
            "last_enqueued_sequence_number": self.last_sequence,
            "last_enqueued_offset": self.last_offset,
            "last_enqueued_time_utc_ms": self.last_enqueued_ms,
            "last_enqueued_time_utc": (
                datetime.fromtimestamp(self.last_enqueued_ms / 1000, UTC).isoformat()
                if self.last_sequence >= 0
                else None
            ),
            "is_partition_empty": self.empty,
        }


def _encode_record(record: Record) -> bytes:
    body = _BODY.pack(record.sequence, record.offset, record.enqueued_ms) + record.payload
    return struct.pack(">II", len(record.payload), zlib.crc32(body)) + body


class PartitionLog:
    """The events of one partition, numbered from 0, oldest first."""

    def __init__(self, partition: str, directory: Path | None = None) -> None:
        self.partition = partition
        self._records: list[Record] = []
        self._head = 0  # index of the first kept record in _records
        self._begin = 0
        self._next_sequence = 0
        self._next_offset = 0
        self._last_enqueued_ms = 0
        self._last_offset = -1
        self._expired_bytes = 0
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._meta: Path | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._path = directory / f"partition-{partition}.log"
            self._meta = directory / f"partition-{partition}.meta"
            self._load()
            self._file = open(self._path, "ab")  # noqa: SIM115 - held open for the log's lifetime

    # -- loading -----------------------------------------------------------------

    def _load(self) -> None:
        assert self._path is not None
        assert self._meta is not None
        if self._meta.exists():
            meta = json.loads(self._meta.read_text())
            self._begin = int(meta["begin"])
            self._next_sequence = int(meta["next_sequence"])
            self._next_offset = int(meta["next_offset"])
            self._last_enqueued_ms = int(meta.get("last_enqueued_ms", 0))
            self._last_offset = int(meta.get("last_offset", -1))
        if not self._path.exists():
            return
        data = self._path.read_bytes()
        position = 0
        previous = -1
        while position + _RECORD.size <= len(data):
            length, crc, sequence, offset, enqueued_ms = _RECORD.unpack_from(data, position)
            end = position + _RECORD.size + length
            if end > len(data) or zlib.crc32(data[position + 8 : end]) != crc:
                break
            record = Record(sequence, offset, enqueued_ms, data[position + _RECORD.size : end])
            if sequence <= previous:
                break  # not ascending: treat like a torn tail
            position = end
            previous = sequence
            self._next_sequence = max(self._next_sequence, sequence + 1)
            self._next_offset = max(self._next_offset, offset + _RECORD.size + length)
            self._last_enqueued_ms = enqueued_ms
            self._last_offset = offset
            if sequence >= self._begin:
                self._records.append(record)
            else:
                self._expired_bytes += _RECORD.size + length
        if position < len(data):
            with open(self._path, "r+b") as torn:
                torn.truncate(position)
        if self._records:
            self._begin = max(self._begin, self._records[0].sequence)
        else:
            self._begin = max(self._begin, self._next_sequence)

    # -- reading -----------------------------------------------------------------

    @property
    def begin(self) -> int:
        return self._begin

    @property
    def last(self) -> int:
        return self._next_sequence - 1

    def info(self) -> PartitionInfo:
        return PartitionInfo(
            self.partition,
            self._begin,
            self.last,
            str(self._last_offset),
            self._last_enqueued_ms,
            self._begin > self.last,
        )

    def _index(self, sequence: int) -> int:
        """Index in ``_records`` of ``sequence`` (clamped to the kept range)."""
        if self._head >= len(self._records):
            return len(self._records)
        first = self._records[self._head].sequence
        return self._head + min(max(sequence - first, 0), len(self._records) - self._head)

    def read(self, from_sequence: int, limit: int) -> Sequence[Record]:
        """Up to ``limit`` records from ``from_sequence`` on (from the beginning if it was expired)."""
        start = self._index(from_sequence)
        return self._records[start : start + limit]

    def records_between(self, first: int, last: int) -> Sequence[Record]:
        """Kept records with ``first <= sequence <= last``."""
        return self._records[self._index(first) : self._index(last + 1)]

    def start_sequence(self, position: StartPosition) -> int:
        """The sequence number a receiver starting at ``position`` gets first.

        Below the beginning means the beginning (the service's silent skip);
        a sequence number beyond the end is :class:`InvalidPosition` with the
        service's message.
        """
        kept = self._records[self._head :]
        if position.kind == "sequence":
            wanted = int(position.value) + (0 if position.inclusive else 1)
            if wanted > self._next_sequence:
                raise InvalidPosition(
                    f"The supplied sequence number '{position.value}' is invalid. "
                    f"The last sequence number in the system is '{self.last}'"
                )
            return max(wanted, self._begin)
        if position.kind == "offset":
            if position.value == "-1":
                return self._begin
            if position.value == "@latest":
                return self._next_sequence
            offsets = [r.offset for r in kept]
            find = bisect.bisect_left if position.inclusive else bisect.bisect_right
            index = find(offsets, int(position.value))
        else:
            times = [r.enqueued_ms for r in kept]
            find = bisect.bisect_left if position.inclusive else bisect.bisect_right
            index = find(times, int(position.value))
        return kept[index].sequence if index < len(kept) else self._next_sequence

    # -- writing -----------------------------------------------------------------

    def append(self, events: Sequence[IncomingEvent], now_ms: int) -> list[Record]:
        """Enqueue ``events`` in order; enqueued times never go backwards."""
        enqueued_ms = max(now_ms, self._last_enqueued_ms)
        records: list[Record] = []
        for event in events:
            payload = stored_payload(
                event, sequence=self._next_sequence, offset=self._next_offset, enqueued_ms=enqueued_ms
            )
            record = Record(self._next_sequence, self._next_offset, enqueued_ms, payload)
            records.append(record)
            self._last_offset = self._next_offset
            self._next_sequence += 1
            self._next_offset += _RECORD.size + len(payload)
        self._last_enqueued_ms = enqueued_ms
        if self._file is not None and records:
            self._file.write(b"".join(_encode_record(r) for r in records))
            self._file.flush()
        self._records.extend(records)
        return records

    def expire(self, before_sequence: int) -> int:
        """Drop every event below ``before_sequence``; return how many were dropped."""
        if before_sequence > self._next_sequence:
            raise ValueError(
                f"cannot expire before sequence {before_sequence}: partition {self.partition} ends at {self.last}"
            )
        if before_sequence <= self._begin:
            return 0
        end = self._index(before_sequence)
        dropped = self._records[self._head : end]
        self._head = end
        self._begin = before_sequence
        self._expired_bytes += sum(_RECORD.size + len(r.payload) for r in dropped)
        if self._head > 1024 and self._head * 2 > len(self._records):
            del self._records[: self._head]
            self._head = 0
        self._persist_expiry()
        return len(dropped)

    def expire_before_time(self, cutoff_ms: int) -> int:
        """Drop events enqueued before ``cutoff_ms`` (retention)."""
        times = [r.enqueued_ms for r in self._records[self._head :]]
        index = bisect.bisect_left(times, cutoff_ms)
        if index == 0:
            return 0
        return self.expire(self._records[self._head + index - 1].sequence + 1)

    def _persist_expiry(self) -> None:
        if self._meta is None or self._path is None:
            return
        meta = {
            "begin": self._begin,
            "next_sequence": self._next_sequence,
            "next_offset": self._next_offset,
            "last_enqueued_ms": self._last_enqueued_ms,
            "last_offset": self._last_offset,
        }
        tmp = self._meta.with_suffix(".meta.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self._meta)
        kept = self._records[self._head :]
        kept_bytes = sum(_RECORD.size + len(r.payload) for r in kept)
        if self._expired_bytes > kept_bytes:
            # Rewrite without the expired records; the meta file above already
            # carries the numbering, so a kill between the two steps loses nothing.
            assert self._file is not None
            self._file.close()
            tmp_log = self._path.with_suffix(".log.tmp")
            with open(tmp_log, "wb") as out:
                out.write(b"".join(_encode_record(r) for r in kept))
            os.replace(tmp_log, self._path)
            self._file = open(self._path, "ab")  # noqa: SIM115
            self._expired_bytes = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
