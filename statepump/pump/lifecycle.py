"""The :class:`Pump`: the object an application holds, and its lifecycle.

A ``Pump`` is the readers' side (:class:`~statepump.pump.published.Published`:
``version``, ``state``, ``wait_for``, ...) plus what starts and stops the
executor that feeds it (:class:`~statepump.pump.executor.Executor`), in the
running event loop or on a thread of its own, and ``status()``, which reads
both. It holds no logic of its own beyond that: the readers' side does not
know where versions come from, and the executor sees readers only through a
:class:`~statepump.pump.published.Publishing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pyrsistent import PMap
from typing_extensions import TypeVar

from statepump.core import plan
from statepump.core.configops import config
from statepump.core.errors import SequenceGapError
from statepump.core.events import Version
from statepump.core.fold import Poisoned, PoisonPolicy, Rejection
from statepump.core.history import History
from statepump.core.reducer import Reducer
from statepump.pump.executor import CATCHUP_PUBLISH_INTERVAL, Executor
from statepump.pump.published import Published, Publishing, PumpFailed
from statepump.sources import EventSource
from statepump.stores import SnapshotStore
from statepump.stores.deadletters import DeadLetter
from statepump.stores.snapshots import Loaded, initial_version

#: The state's type; a pump built without a ``reducer`` folds with :data:`~statepump.core.configops.config`,
#: whose state is a ``PMap`` (the default lets ``pump = Pump(source)`` type-check without an annotation).
S = TypeVar("S", default=PMap[Any, Any])


class Pump(Published[S]):
    """Folds one partition into an in-memory state and keeps it current.

    Embedded in an asyncio application::

        pump = Pump(source, store=store)
        await pump.start()
        await pump.wait_ready(timeout=30)
        settings = pump.state            # a plain attribute read: no lock, no I/O
        await pump.wait_for(42)          # read-your-writes
        await pump.stop()

    In a synchronous application (Flask, Django), run it on a background
    thread with :meth:`start_in_thread` / :meth:`stop_in_thread`.

    >>> import asyncio
    >>> from statepump.sources.memory import MemorySource
    >>> src = MemorySource()
    >>> _ = src.append({"op": "set", "path": "greeting", "value": "hello"})
    >>> async def main():
    ...     async with Pump(src) as pump:
    ...         await pump.wait_ready(timeout=5)
    ...         return pump.state["greeting"], pump.version.sequence
    >>> asyncio.run(main())
    ('hello', 0)
    """

    def __init__(
        self,
        source: EventSource,
        *,
        reducer: Reducer[S] = config,  # type: ignore[assignment]
        store: SnapshotStore | None = None,
        capture: EventSource | None = None,
        eventhub: str = "hub",
        partition: str = "0",
        poison_policy: PoisonPolicy = "stop",
        dead_letter: DeadLetter | None = None,
        allow_gap: bool = False,
        hmac_key: bytes | None = None,
        gc_interval: float = 300.0,
        replan_interval: float = 5.0,
        progress_interval: float = 5.0,
        until: int | None = None,
        catchup_publish_interval: float = CATCHUP_PUBLISH_INTERVAL,
        history: History | None = None,
    ) -> None:
        super().__init__(initial_version(reducer, partition))
        #: The recent events this pump folded past, with their outcomes (see :mod:`statepump.core.history`).
        self.history: History = history if history is not None else History()
        self._executor: Executor[S] = Executor(
            Publishing(self),
            source,
            reducer=reducer,
            store=store,
            capture=capture,
            eventhub=eventhub,
            partition=partition,
            poison_policy=poison_policy,
            dead_letter=dead_letter,
            allow_gap=allow_gap,
            hmac_key=hmac_key,
            gc_interval=gc_interval,
            replan_interval=replan_interval,
            progress_interval=progress_interval,
            until=until,
            catchup_publish_interval=catchup_publish_interval,
            history=self.history,
        )
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started_at = time.monotonic()

    # --- what it was built with (read-only: the executor holds them) ----------------------

    @property
    def source(self) -> EventSource:
        return self._executor.source

    @property
    def reducer(self) -> Reducer[S]:
        return self._executor.reducer

    @property
    def store(self) -> SnapshotStore | None:
        return self._executor.store

    @property
    def capture(self) -> EventSource | None:
        return self._executor.capture

    @property
    def eventhub(self) -> str:
        return self._executor.eventhub

    @property
    def partition(self) -> str:
        return self._executor.partition

    @property
    def poison_policy(self) -> PoisonPolicy:
        return self._executor.poison_policy

    @property
    def dead_letter(self) -> DeadLetter | None:
        return self._executor.dead_letter

    @property
    def allow_gap(self) -> bool:
        return self._executor.allow_gap

    @property
    def hmac_key(self) -> bytes | None:
        return self._executor.hmac_key

    @property
    def replan_interval(self) -> float:
        return self._executor.replan_interval

    @property
    def progress_interval(self) -> float:
        return self._executor.progress_interval

    @property
    def catchup_publish_interval(self) -> float:
        """Seconds between the versions a catch-up publishes.

        While catching up, a new version is published at most this often (and when the
        catch-up ends) instead of after every batch; once live, after every batch.
        """
        return self._executor.catchup_publish_interval

    @property
    def until(self) -> int | None:
        """Stop after applying this sequence number (the snapshotter's target); ``None`` pumps forever."""
        return self._executor.until

    # --- what it has done -----------------------------------------------------------------

    @property
    def loaded(self) -> Loaded[S] | None:
        """The snapshot load's outcome (``None`` before it, or without a store)."""
        return self._executor.loaded

    @property
    def counts(self) -> dict[str, int]:
        return self._executor.counts

    @property
    def fold_seconds_total(self) -> float:
        return self._executor.fold_seconds_total

    @property
    def poisoned(self) -> list[Poisoned]:
        """The most recent poison events, newest last (bounded)."""
        return self._executor.poisoned

    @property
    def rejected(self) -> list[Rejection]:
        """The most recent rejected events (a no-op each, see :class:`statepump.Rejected`), newest last (bounded)."""
        return self._executor.rejected

    @property
    def skipped_ranges(self) -> list[plan.Skipped]:
        return self._executor.skipped_ranges

    @property
    def folded_sequence(self) -> int:
        """The last event folded: ahead of ``version.sequence`` while a catch-up holds its fold open."""
        return self._executor.folded_sequence

    def status(self) -> dict[str, Any]:
        """A JSON-able summary for ``/v1/status``, metrics and logs (never contains a secret)."""
        v = self.version
        ex = self._executor
        lag_events, lag_seconds = self._lag(v)
        meta = ex.loaded.meta if ex.loaded else None
        reader: dict[str, Any] = getattr(ex.source, "reader_status", None) or {}
        return {
            "partition": ex.partition,
            "eventhub": ex.eventhub,
            "sequence": v.sequence,
            "enqueued_time": v.enqueued_time.isoformat() if v.enqueued_time else None,
            "applied_at": v.applied_at.isoformat() if v.applied_at else None,
            "lag_events": lag_events,
            "lag_seconds": lag_seconds,
            "ready": self._ready,
            "not_ready_reason": self.not_ready_reason,
            "phase": self._phase,
            "snapshot_sequence": meta.sequence if meta else None,
            "snapshot_created_at": meta.created_at.isoformat() if meta else None,
            "snapshot_age_seconds": (datetime.now(UTC) - meta.created_at).total_seconds() if meta else None,
            "snapshots_rejected": len(ex.loaded.rejected) if ex.loaded else 0,
            "events_from_capture": ex.counts["events_from_capture"],
            "events_from_hub": ex.counts["events_from_hub"] + ex.counts["events_from_memory"],
            "events_from_relay": ex.counts.get("events_from_relay", 0),
            "events_applied": sum(ex.counts.get(f"events_from_{k}", 0) for k in ("capture", "hub", "memory", "relay")),
            "duplicates_skipped": ex.counts["duplicates_skipped"],
            "poison_events": ex.counts["poison_events"],
            "last_poison_event": ex.poisoned[-1].event.sequence if ex.poisoned else None,
            "events_rejected": ex.counts["events_rejected"],
            "last_rejected_event": (
                {"sequence": ex.rejected[-1].event.sequence, "reason": ex.rejected[-1].reason} if ex.rejected else None
            ),
            "events_skipped_by_gap": ex.counts["events_skipped_by_gap"],
            # The release from a poison stop (statepump skip, statepump/core/control.py): where the search is,
            # and the poison events control events skipped.
            "halted_on_poison": (
                {"sequence": ex.halted[0].event.sequence, "read_through": ex.halted[1]} if ex.halted else None
            ),
            "poison_events_skipped_by_control": ex.counts["poison_events_skipped_by_control"],
            "last_skipped_by_control": (
                {
                    "sequence": ex.released[-1][0].event.sequence,
                    "by": ex.released[-1][1].sequence,
                    "reason": ex.released[-1][1].reason,
                }
                if ex.released
                else None
            ),
            "gap": {"first": ex.gap.expected, "last": ex.gap.last_missing} if ex.gap else None,
            "allow_gap": ex.allow_gap,
            "reconnects": int(getattr(ex.source, "reconnects", 0)),
            # An Event Hubs source's pool of consumer groups: the one held (None while none is), its size,
            # and the receivers the hub refused because their group had its five readers.
            "consumer_group": reader.get("consumer_group"),
            "consumer_groups": reader.get("consumer_groups"),
            "quota_refusals": reader.get("quota_refusals"),
            # The hub's partitions this pump never reads: what is sent there is never applied.
            "partitions_not_read": list(getattr(ex.source, "partitions_not_read", None) or ()),
            # schema: the --schema identity (sha256 of its canonical JSON), as snapshots record it; or None.
            "reducer": {"name": ex.reducer.name, "version": ex.reducer.version, "schema": ex.reducer.schema},
            "fold_seconds_total": ex.fold_seconds_total,
            "fold_batches": ex.counts["fold_batches"],
            "gc_collections": ex.collector.collections,
            "gc_last_pause_seconds": ex.collector.last_pause_seconds,
            "uptime_seconds": time.monotonic() - self._started_at,
            # What the replication feed can serve (a relay's downstreams read their bounds here).
            "history": {
                "oldest": self.history.oldest,
                "newest": self.history.newest,
                "events": len(self.history),
                "bytes": self.history.bytes,
            },
            "upstream": getattr(ex.source, "upstream_status", None),
        }

    def _lag(self, v: Version[S]) -> tuple[int | None, float | None]:
        seen = self.source.last_enqueued or self._executor.hub_last
        if seen is None:
            return None, None
        last, last_time = seen
        events = max(0, last - v.sequence)
        if events == 0:
            return 0, 0.0
        if last_time is None or v.enqueued_time is None:
            return events, None
        return events, max(0.0, (last_time - v.enqueued_time).total_seconds())

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start loading and pumping in the running loop; returns at once (see :meth:`wait_ready`)."""
        if self._task is not None:
            raise RuntimeError("this pump was already started")
        self._loop = asyncio.get_running_loop()
        self._task = self._executor.start()

    async def stop(self) -> None:
        """Stop pumping and close the sources; the last version stays readable."""
        self._executor.stop()
        await self.source.close()
        if self.capture is not None:
            await self.capture.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.store is not None:
            await self.store.close()

    async def run(self) -> None:
        """Start and run until stopped or failed; re-raises the failure (for ``statepump run``)."""
        await self.start()
        assert self._task is not None
        try:
            await self._task
        finally:
            await self.stop()
        if self._failure is not None:
            raise self._failure

    async def run_to_target(self, *, gap_poll: float = 0.1) -> None:
        """Start, wait until ready (a pump built with ``until`` is ready at its target), and stop.

        For the offline users of a pump, the snapshotter and time travel, which
        must not wait out a gap the way a sidecar does: a gap raises
        :class:`StoppedAtGap` as soon as the pump reports it (checked every
        ``gap_poll`` seconds), and a failure raises :class:`PumpFailed`. The
        pump is stopped in every case; its ``version`` says where it got.
        """
        await self.start()
        ready = asyncio.ensure_future(self.wait_ready())
        try:
            while True:
                done, _ = await asyncio.wait({ready}, timeout=gap_poll)
                if done:
                    ready.result()
                    return
                gap = self.status()["gap"]
                if gap is not None:
                    raise StoppedAtGap(gap["first"], gap["last"], self.not_ready_reason)
        finally:
            if not ready.done():
                ready.cancel()
                with contextlib.suppress(asyncio.CancelledError, PumpFailed):
                    await ready
            await self.stop()

    async def __aenter__(self) -> Pump[S]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, *, name: str = "statepump") -> None:
        """Run the pump on a daemon thread with its own event loop (for synchronous web apps).

        >>> from statepump.sources.memory import MemorySource
        >>> src = MemorySource()
        >>> _ = src.append({"op": "set", "path": "a", "value": 1})
        >>> pump = Pump(src)
        >>> pump.start_in_thread()
        >>> pump.wait_for_sync(0, timeout=5).state["a"]
        1
        >>> pump.stop_in_thread()
        """
        started = threading.Event()
        loop = asyncio.new_event_loop()
        failed: list[BaseException] = []

        def main() -> None:
            # The loop runs until stop_in_thread() stops it, not until the pump's
            # task ends: stop() itself must be able to finish on this loop.
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failed.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name=name, daemon=True)
        self._thread.start()
        started.wait()
        if failed:
            raise failed[0]

    def stop_in_thread(self, timeout: float = 10.0) -> None:
        """Stop a pump started with :meth:`start_in_thread` and join its thread."""
        loop, thread = self._loop, self._thread
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.stop(), loop)
        try:
            future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None


class StoppedAtGap(SequenceGapError):
    """:meth:`Pump.run_to_target` met events no source holds: ``expected..last_missing``, and the pump's reason."""

    def __init__(self, first: int, last: int, reason: str | None) -> None:
        super().__init__(first, last_missing=last)
        self.reason = reason
