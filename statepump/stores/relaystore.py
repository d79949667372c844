"""A relay as a snapshot store: the upstream's current version, downloaded from ``GET /v1/snapshot``.

A relay-fed pump starts from its relay's snapshot (and from its own store's
when that is newer: :class:`NewestOf`). :class:`RelayStore` is a read-only
:class:`~statepump.stores.SnapshotStore`: ``list`` downloads the upstream's
current snapshot (the relay encodes each version once and caches it) and
names it by its sequence number, ``read`` returns those bytes, and ``write``
and ``delete`` are refused with :class:`ReadOnlyStore`, since the relay, not
its readers, decides what it serves. The bytes are the codec's format and
are verified as any store's are (checksum, HMAC when a key is configured,
hub, partition and reducer), so a relay cannot hand over a state a direct
reader would refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from statepump.core.errors import ServiceUnavailable, StatepumpError
from statepump.sources.relay import Upstream, UpstreamClient, UpstreamError, error_text
from statepump.stores import SnapshotRef, SnapshotStore, snapshot_name

log = logging.getLogger("statepump.relay")


class ReadOnlyStore(StatepumpError):
    """A relay's snapshots are the relay's: its readers cannot write or delete them."""


class RelayStore:
    """The upstreams' current snapshot, read-only (tried in order, like the feed).

    >>> RelayStore(["/run/statepump.sock"], "hub", "0").description
    'the relay snapshot of /run/statepump.sock'
    """

    def __init__(
        self,
        upstreams: Sequence[str | Upstream],
        eventhub: str,
        partition: str,
        *,
        token: bytes | None = None,
        ca_file: Path | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.upstreams = [u if isinstance(u, Upstream) else Upstream.parse(u) for u in upstreams]
        self.eventhub = eventhub
        self.partition = partition
        self.client = UpstreamClient(token=token, ca_file=ca_file)
        self.timeout = timeout
        self.description = "the relay snapshot of " + ", ".join(u.describe() for u in self.upstreams)
        self._held: tuple[SnapshotRef, bytes] | None = None

    async def list(self) -> list[SnapshotRef]:
        failures: list[str] = []
        empty = False  # an upstream answered that it has no version yet
        for upstream in self.upstreams:
            try:
                answer = await self.client.get(upstream, b"/v1/snapshot", timeout=self.timeout)
            except UpstreamError as exc:
                failures.append(str(exc))
                continue
            if answer.status == 503:
                empty = True
                continue  # nothing applied there yet: another upstream may have a version
            if answer.status != 200:
                failures.append(f"{upstream.describe()} refused the snapshot: {error_text(answer)}")
                continue
            raw = answer.headers.get("statepump-sequence", "")
            if not raw.isdigit():
                failures.append(f"{upstream.describe()} sent a snapshot without its sequence number")
                continue
            sequence = int(raw)
            name = "relay/" + snapshot_name("", self.eventhub, self.partition, sequence)
            ref = SnapshotRef(sequence, name, len(answer.body))
            self._held = (ref, answer.body)
            return [ref]
        if empty:
            return []  # the upstream has no version yet: start from the initial state, and follow its feed
        raise ServiceUnavailable(f"no upstream served a snapshot: {failures[-1]}")

    async def read(self, ref: SnapshotRef) -> bytes:
        held = self._held
        if held is not None and held[0].name == ref.name:
            return held[1]
        raise FileNotFoundError(f"{ref.name} is not the relay's current snapshot")

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        raise ReadOnlyStore(f"{self.description} is read-only: snapshot {sequence} was not written")

    async def delete(self, ref: SnapshotRef) -> None:
        raise ReadOnlyStore(f"{self.description} is read-only: {ref.name} was not deleted")

    async def close(self) -> None:
        self._held = None


class NewestOf:
    """Two stores seen as one: ``list`` merges them by sequence; writes and deletes go to ``own``.

    A relay-fed pump with a store of its own starts from whichever is newer.
    """

    def __init__(self, relay: SnapshotStore, own: SnapshotStore) -> None:
        self.relay = relay
        self.own = own
        self.description = f"{relay.description} and {own.description}"
        self._relay_names: set[str] = set()

    async def list(self) -> list[SnapshotRef]:
        own = await self.own.list()
        try:
            relay = await self.relay.list()
        except ServiceUnavailable as exc:
            log.warning("%s; using %s only", exc, self.own.description)
            relay = []
        self._relay_names = {r.name for r in relay}
        return sorted([*own, *relay], key=lambda r: (r.sequence, r.name in self._relay_names))

    async def read(self, ref: SnapshotRef) -> bytes:
        return await (self.relay if ref.name in self._relay_names else self.own).read(ref)

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        return await self.own.write(sequence, data)

    async def delete(self, ref: SnapshotRef) -> None:
        await self.own.delete(ref)

    async def close(self) -> None:
        await self.relay.close()
        await self.own.close()
