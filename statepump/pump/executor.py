"""The pump: load a snapshot, catch up, tail the hub, publish versions.

This is the I/O shell around the pure core. It owns one loop, ``_run``::

    load the newest usable snapshot (or the reducer's initial state)
    repeat:
        read the hub's bounds
        step = plan.next_step(position, bounds, capture coverage)
        ReadCapture -> fold Capture batches through ``step.through``, re-plan
        ProbeCapture -> read Capture's bounds, re-plan
        ReadHub     -> fold hub batches forever; ready once the hub's last
                       event as seen at that moment is applied. A gap in the
                       hub (retention overtook us during a long disconnect)
                       ends the step and the loop re-plans: Capture may heal it.
        gap         -> not ready, say why, keep serving the last good version,
                       and re-plan every ``replan_interval`` seconds (Capture
                       may still write the missing files).

Readers never take a lock: ``pump.version`` is replaced by one reference
assignment per publish (atomic under the GIL), and a ``Version`` is immutable,
so a reader sees the state for event N or a later one, never something in
between. Live, every batch is published; while catching up, the batches go
into one open ``Folder`` published about once a second (``_apply``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic

from pyrsistent import PMap
from typing_extensions import TypeVar

from statepump.core import collector, plan
from statepump.core.configops import config
from statepump.core.errors import SequenceGapError, ServiceUnavailable, StatepumpError
from statepump.core.events import Event, PartitionBounds, Version
from statepump.core.fold import Fed, Folder, FoldGap, FoldResult, Poisoned, PoisonPolicy
from statepump.core.reducer import Reducer
from statepump.sources import EventSource
from statepump.stores import SnapshotStore
from statepump.stores.deadletters import DeadLetter
from statepump.stores.snapshots import Loaded, initial_version, load_latest

#: The state's type; a pump built without a ``reducer`` folds with :data:`~statepump.core.configops.config`,
#: whose state is a ``PMap`` (the default lets ``pump = Pump(source)`` type-check without an annotation).
S = TypeVar("S", default=PMap[Any, Any])
log = logging.getLogger("statepump.pump")

Subscriber = Callable[[Version[Any], Version[Any]], None]

#: Seconds between the versions a catch-up publishes (``Pump(catchup_publish_interval=...)``).
CATCHUP_PUBLISH_INTERVAL = 1.0


class PumpFailed(StatepumpError):
    """The pump stopped for good (poison event under ``stop``, wrong hub, source gave up)."""


class _Waiters:
    """Read-your-writes waiters, ordered by the sequence number they wait for.

    A heap makes a publish cost O(k log n) for the k waiters it releases, so
    thousands of waiting requests cost nothing until their number arrives.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[Version[Any]], None]]] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def add(self, sequence: int, release: Callable[[Version[Any]], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, (sequence, next(self._ids), release))

    def release_through(self, version: Version[Any]) -> None:
        due = []
        with self._lock:
            while self._heap and self._heap[0][0] <= version.sequence:
                due.append(heapq.heappop(self._heap)[2])
        for release in due:
            release(version)

    def __len__(self) -> int:
        return len(self._heap)


class Pump(Generic[S]):
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
    ) -> None:
        self.source = source
        self.reducer = reducer
        self.store = store
        self.capture = capture
        self.eventhub = eventhub
        self.partition = partition
        self.poison_policy = poison_policy
        self.dead_letter = dead_letter
        self.allow_gap = allow_gap
        self.hmac_key = hmac_key
        self.replan_interval = replan_interval
        self.progress_interval = progress_interval
        #: While catching up, a new version is published at most this often (and when the
        #: catch-up ends) instead of after every batch; once live, after every batch.
        self.catchup_publish_interval = catchup_publish_interval
        #: Stop after applying this sequence number (the snapshotter's target); ``None`` pumps forever.
        self.until = until

        #: The current version. Replaced, never mutated: read it once and use that object.
        self.version: Version[S] = initial_version(reducer, partition)
        self.loaded: Loaded[S] | None = None

        self._ready = False
        self._was_ready = False
        self._phase = "starting"
        self._problem: str | None = None
        self._gap: SequenceGapError | None = None
        self._failure: BaseException | None = None
        self._subscribers: list[Subscriber] = []
        self._on_change: list[Callable[[], None]] = []
        self._waiters = _Waiters()
        # The catch-up's open fold: events folded but not yet published (see _apply).
        self._folder: Folder[S] | None = None
        self._folder_opened = 0.0
        self._collector = collector.Collector(gc_interval)
        self._task: asyncio.Task[None] | None = None
        self._early_bounds: asyncio.Task[PartitionBounds] | None = None
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started_at = time.monotonic()

        self.counts: dict[str, int] = {
            "events_from_capture": 0,
            "events_from_hub": 0,
            "events_from_memory": 0,
            "duplicates_skipped": 0,
            "poison_events": 0,
            "events_skipped_by_gap": 0,
            "fold_batches": 0,
        }
        self.fold_seconds_total = 0.0
        self.poisoned: list[Poisoned] = []  # the most recent poison events, newest last (bounded)
        self.skipped_ranges: list[plan.Skipped] = []
        self._hub_last: tuple[int, datetime | None] | None = None

    # --- what readers use -----------------------------------------------------------

    @property
    def state(self) -> S:
        """The current state (``self.version.state``)."""
        return self.version.state

    @property
    def ready(self) -> bool:
        """True once caught up to the hub's tail as seen at start, until a gap or poison event stops the pump."""
        return self._ready

    @property
    def not_ready_reason(self) -> str | None:
        if self._ready:
            return None
        if self._problem:
            return self._problem
        return f"{self._phase} (at sequence {self.version.sequence})"

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the pump for good, if any."""
        return self._failure

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` after each publish, on the pump's thread; returns an unsubscribe function.

        Callbacks must be quick and must not block: they run between batches.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def wait_for(self, sequence: int, timeout: float | None = None) -> Version[S]:
        """Wait until the event ``sequence`` is applied; return that (or a later) version.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        current = self.version
        if current.sequence >= sequence:
            return current
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Version[S]] = loop.create_future()

        def release(version: Version[Any]) -> None:
            def settle() -> None:
                if not future.done():
                    future.set_result(version)

            if self._loop is loop:
                settle()
            else:
                loop.call_soon_threadsafe(settle)

        self._waiters.add(sequence, release)
        # The publish may have happened between the check above and add().
        if self.version.sequence >= sequence:
            return self.version
        async with asyncio.timeout(timeout):
            return await future

    def wait_for_sync(self, sequence: int, timeout: float | None = None) -> Version[S]:
        """:meth:`wait_for` for threads that are not running an event loop."""
        current = self.version
        if current.sequence >= sequence:
            return current
        future: concurrent.futures.Future[Version[S]] = concurrent.futures.Future()

        def release(version: Version[Any]) -> None:
            if not future.done():
                future.set_result(version)

        self._waiters.add(sequence, release)
        if self.version.sequence >= sequence:
            return self.version
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"event {sequence} was not applied within {timeout} s") from None

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until :attr:`ready`; raises :class:`PumpFailed` if the pump stopped for good first."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not self._ready:
                if self._failure is not None:
                    raise PumpFailed(str(self._failure)) from self._failure
                if self._task is not None and self._task.done():
                    raise PumpFailed(self.not_ready_reason or "the pump stopped")
                changed: asyncio.Future[None] = loop.create_future()

                def wake(changed: asyncio.Future[None] = changed) -> None:
                    def settle() -> None:
                        if not changed.done():
                            changed.set_result(None)

                    loop.call_soon_threadsafe(settle)

                self._on_change.append(wake)
                if self._ready or self._failure is not None or (self._task is not None and self._task.done()):
                    continue  # changed between the checks and the registration
                await changed

    def _changed(self) -> None:
        """Wake everything waiting in :meth:`wait_ready` (called on ready, failure, poison, gap, end)."""
        callbacks, self._on_change = self._on_change, []
        for wake in callbacks:
            wake()

    @property
    def folded_sequence(self) -> int:
        """The last event folded: ahead of ``version.sequence`` while a catch-up holds its fold open."""
        folder = self._folder
        return folder.sequence if folder is not None else self.version.sequence

    def status(self) -> dict[str, Any]:
        """A JSON-able summary for ``/v1/status``, metrics and logs (never contains a secret)."""
        v = self.version
        lag_events, lag_seconds = self._lag(v)
        meta = self.loaded.meta if self.loaded else None
        return {
            "partition": self.partition,
            "eventhub": self.eventhub,
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
            "snapshots_rejected": len(self.loaded.rejected) if self.loaded else 0,
            "events_from_capture": self.counts["events_from_capture"],
            "events_from_hub": self.counts["events_from_hub"] + self.counts["events_from_memory"],
            "events_applied": sum(self.counts[f"events_from_{k}"] for k in ("capture", "hub", "memory")),
            "duplicates_skipped": self.counts["duplicates_skipped"],
            "poison_events": self.counts["poison_events"],
            "last_poison_event": self.poisoned[-1].event.sequence if self.poisoned else None,
            "events_skipped_by_gap": self.counts["events_skipped_by_gap"],
            "gap": {"first": self._gap.expected, "last": self._gap.last_missing} if self._gap else None,
            "allow_gap": self.allow_gap,
            "reconnects": int(getattr(self.source, "reconnects", 0)),
            "reducer": {"name": self.reducer.name, "version": self.reducer.version},
            "fold_seconds_total": self.fold_seconds_total,
            "fold_batches": self.counts["fold_batches"],
            "gc_collections": self._collector.collections,
            "gc_last_pause_seconds": self._collector.last_pause_seconds,
            "uptime_seconds": time.monotonic() - self._started_at,
        }

    def _lag(self, v: Version[S]) -> tuple[int | None, float | None]:
        seen = self.source.last_enqueued or self._hub_last
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
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="statepump")

    async def stop(self) -> None:
        """Stop pumping and close the sources; the last version stays readable."""
        self._stopping.set()
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

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        self._collector.start()
        # Connecting to the hub takes about a second: let it happen while the
        # snapshot loads. The bounds it reads are a little stale by the time
        # they are used, which is safe: retention only moves forward, and a hub
        # read that finds its first event missing makes the loop plan again.
        self._early_bounds = asyncio.create_task(self.source.bounds(), name="statepump-first-bounds")
        try:
            await self._load()
            hint = getattr(self.capture, "set_time_hint", None)
            if hint is not None and self.version.enqueued_time is not None:
                # Capture names carry window times: start the search near the snapshot's time.
                hint(self.version.enqueued_time)
            coverage: plan.CaptureCoverage | None = (
                plan.CaptureCoverage.unknown() if self.capture else plan.CaptureCoverage.off()
            )
            while coverage is not None and not self._stopping.is_set():
                try:
                    coverage = await self._advance(coverage)
                except ServiceUnavailable as exc:
                    if not self._was_ready:
                        raise  # at start, a hub that stays away is a failure: `statepump run` exits 1
                    await self._unavailable(exc)
        except (asyncio.CancelledError, _Stop):
            pass
        except plan.PositionAheadError as exc:
            self._fail(exc)
        except StatepumpError as exc:  # a failure statepump explains itself: one line, no traceback
            log.error("the pump stopped: %s", exc)
            self._fail(exc)
        except Exception as exc:
            log.exception("the pump stopped: %s", exc)
            self._fail(exc)
        finally:
            early, self._early_bounds = self._early_bounds, None
            if early is not None:
                early.cancel()
                if early.done() and not early.cancelled():
                    early.exception()  # retrieved: the load's own error is the one that matters
            self._collector.stop()
            self._changed()

    async def _advance(self, coverage: plan.CaptureCoverage) -> plan.CaptureCoverage | None:
        """One round of the loop: plan from fresh bounds and carry out the step; ``None`` when done."""
        early, self._early_bounds = self._early_bounds, None
        bounds = await (early if early is not None else self.source.bounds())
        self._hub_last = (bounds.last, bounds.last_enqueued_time)
        try:
            step = plan.next_step(self.version.sequence, bounds, coverage, until=self.until, allow_gap=self.allow_gap)
        except SequenceGapError as gap:
            await self._stopped_by_gap(gap)
            return plan.CaptureCoverage.unknown() if self.capture else coverage
        if isinstance(step, plan.ProbeCapture):
            assert self.capture is not None
            return plan.CaptureCoverage(True, await self.capture.bounds())
        if isinstance(step, plan.Done):
            self._become_ready()
            return None
        if step.skipped is not None:
            self._skip(step.skipped)
        if isinstance(step, plan.ReadCapture):
            try:
                await self._read_capture(step)
            except SequenceGapError as gap:  # Capture files missing or not contiguous
                await self._stopped_by_gap(gap)
                return plan.CaptureCoverage.unknown()
            return coverage
        await self._read_hub(step, bounds.last)
        # The hub read only ends on a gap: Capture's coverage may have grown since.
        return plan.CaptureCoverage.unknown() if self.capture else coverage

    async def _unavailable(self, exc: ServiceUnavailable) -> None:
        """After the pump has been ready, an outage is waited out: not ready, still serving, retrying."""
        if self._ready or self._phase != "waiting for the hub":
            log.error("not serving as ready: %s; serving sequence %d and retrying", exc, self.version.sequence)
        self._ready = False
        self._phase = "waiting for the hub"
        self._problem = f"{exc}; serving sequence {self.version.sequence}"
        self._changed()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.replan_interval)

    async def _load(self) -> None:
        self._phase = "loading snapshot"
        if self.store is None:
            return
        started = time.perf_counter()
        loaded = await load_latest(
            self.store, self.reducer, eventhub=self.eventhub, partition=self.partition, hmac_key=self.hmac_key
        )
        self.loaded = loaded
        for rejected in loaded.rejected:
            log.warning("snapshot %s skipped: %s", rejected.ref.name, rejected.reason)
        if loaded.meta is None:
            log.info("no usable snapshot in %s: starting from the reducer's initial state", self.store.description)
        else:
            age = datetime.now(UTC) - loaded.meta.created_at
            log.info(
                "snapshot loaded: %s (sequence %d, %s, %.0f s old) in %.2f s",
                loaded.ref.name if loaded.ref else "?",
                loaded.meta.sequence,
                loaded.meta.reducer_identity,
                age.total_seconds(),
                time.perf_counter() - started,
            )
            self._publish(loaded.version)

    async def _read_capture(self, step: plan.ReadCapture) -> None:
        assert self.capture is not None
        self._phase = f"catching up from Capture to {step.through}"
        progress = _Progress(self, step.through, "Capture")
        try:
            async with _reading(self.capture.read(step.after)) as batches:
                async for batch in batches:
                    if batch and batch[-1].sequence > step.through:
                        batch = [e for e in batch if e.sequence <= step.through]
                    self._apply(batch, "capture", catching_up_to=step.through)
                    progress.tick()
                    if self.version.sequence >= step.through or self._stopping.is_set():
                        return
        finally:
            self._publish_folded()

    async def _read_hub(self, step: plan.ReadHub, target: int) -> None:
        if step.until is not None:
            target = min(target, step.until)
        self._phase = f"catching up from the hub to {target}"
        self._problem = None
        self._gap = None
        if self.version.sequence >= target:
            self._become_ready()
        progress = _Progress(self, target, "the hub")
        try:
            async with _reading(self.source.read(step.after)) as batches:
                async for batch in batches:
                    if step.until is not None and batch and batch[-1].sequence > step.until:
                        batch = [e for e in batch if e.sequence <= step.until]
                    try:
                        self._apply(batch, self.source.kind, catching_up_to=None if self._ready else target)
                    except FoldGap as gap:
                        log.warning("%s; planning again (Capture may hold the missing events)", gap)
                        return
                    if not self._ready:
                        progress.tick()
                        if self.version.sequence >= target:
                            self._become_ready()
                    self._collector.maybe_collect()
                    if self._stopping.is_set():
                        raise _Stop
                    if step.until is not None and self.version.sequence >= step.until:
                        return  # the loop re-plans and gets Done
        finally:
            self._publish_folded()

    def _become_ready(self) -> None:
        self._ready = True
        self._was_ready = True
        self._phase = "live"
        log.info("live: caught up at sequence %d", self.version.sequence)
        self._changed()

    async def _stopped_by_gap(self, gap: SequenceGapError) -> None:
        if self._gap is None or str(self._gap) != str(gap):
            log.error("not serving as ready: %s; re-checking every %g s", gap, self.replan_interval)
        self._gap = gap
        self._ready = False
        self._phase = "stopped by a gap"
        self._problem = str(gap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.replan_interval)

    def _skip(self, skipped: plan.Skipped) -> None:
        how = "no snapshot, and no source holds them any more" if skipped.reason == "no-snapshot" else "--allow-gap"
        log.warning("skipping events %d..%d (%d events): %s", skipped.first, skipped.last, skipped.count, how)
        self.counts["events_skipped_by_gap"] += skipped.count
        self.skipped_ranges.append(skipped)
        v = self.version
        self._publish(Version(v.state, skipped.last, v.enqueued_time, v.partition, datetime.now(UTC)))

    def _apply(self, batch: Sequence[Event], origin: str, *, catching_up_to: int | None = None) -> None:
        """Fold ``batch`` and publish the new version.

        While catching up (``catching_up_to`` is the sequence number that ends
        the catch-up) the fold stays open across batches and is published
        only when it reaches that number, every ``catchup_publish_interval``
        seconds, or when the step ends: one freeze for many batches is what
        lets the reducer rebuild its state in one pass (a replay 1.45x as fast,
        see ``Folder``), and a catch-up has no one waiting on each version.
        A gap or a poison event publishes what came before it at once.
        """
        if not batch:
            return
        started = time.perf_counter()
        folder = self._folder
        if folder is None:
            folder = self._folder = Folder(self.version, self.reducer, policy=self.poison_policy)
            self._folder_opened = started
        with collector.paused():
            fed = folder.feed(batch)
        self._account(fed, origin)
        if (
            catching_up_to is None
            or folder.sequence >= catching_up_to
            or started - self._folder_opened >= self.catchup_publish_interval
            or fed.gap is not None
            or fed.stopped is not None
        ):
            self._publish_folded()
        self.fold_seconds_total += time.perf_counter() - started
        if fed.gap is not None:
            raise FoldGap(*fed.gap, FoldResult(self.version, fed.applied, fed.duplicates, fed.skipped))  # type: ignore[arg-type]
        if fed.stopped is not None:
            self._poisoned(fed.stopped)
            raise _Stop

    def _publish_folded(self) -> None:
        """Publish what the open fold holds, and close it (a no-op when there is none)."""
        folder, self._folder = self._folder, None
        if folder is None or not folder.pending:
            return
        with collector.paused():
            new = folder.freeze(datetime.now(UTC))
        self._publish(new)

    def _account(self, fed: Fed, origin: str) -> None:
        self.counts["fold_batches"] += 1
        self.counts[f"events_from_{origin}"] = self.counts.get(f"events_from_{origin}", 0) + fed.applied
        self.counts["duplicates_skipped"] += fed.duplicates
        for poisoned in fed.skipped:
            self._record_poison(poisoned)
            if self.dead_letter is not None:
                self.dead_letter.record(poisoned)
            log.error("poison event %d skipped (policy skip): %s", poisoned.event.sequence, poisoned.error)

    def _record_poison(self, poisoned: Poisoned) -> None:
        self.counts["poison_events"] += 1
        self.poisoned = [*self.poisoned[-99:], poisoned]

    def _poisoned(self, poisoned: Poisoned) -> None:
        self._record_poison(poisoned)
        self._ready = False
        self._phase = "stopped by a poison event"
        self._problem = (
            f"poison event {poisoned.event.sequence} on partition {poisoned.event.partition}: {poisoned.error}; "
            f"serving sequence {self.version.sequence} (policy stop)"
        )
        log.error("%s", self._problem)
        self._changed()

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._ready = False
        self._phase = "failed"
        self._problem = f"{type(exc).__name__}: {exc}"
        self._changed()

    def _publish(self, new: Version[S]) -> None:
        old = self.version
        self.version = new  # the one reference swap readers rely on
        self._waiters.release_through(new)
        for callback in list(self._subscribers):
            try:
                callback(old, new)
            except Exception:
                log.exception("a subscriber raised; it stays subscribed")


@contextlib.asynccontextmanager
async def _reading(batches: AsyncIterator[Sequence[Event]]) -> AsyncIterator[AsyncIterator[Sequence[Event]]]:
    """A source's read, closed as soon as the step that uses it ends.

    A step often stops reading early (target reached, a gap, a poison
    event); closing the async generator then releases the connection behind
    it at once instead of whenever the generator is garbage-collected.
    """
    try:
        yield batches
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


class _Stop(Exception):
    """Ends the pump's loop quietly (stop requested, or poison under the stop policy)."""


class _Progress:
    """Logs catch-up progress (position, events/s, ETA) at most every ``interval`` seconds."""

    def __init__(self, pump: Pump[Any], target: int, where: str) -> None:
        self.pump = pump
        self.target = target
        self.where = where
        self.start_seq = pump.folded_sequence
        self.started = self.last_log = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_log < self.pump.progress_interval:
            return
        self.last_log = now
        at = self.pump.folded_sequence
        done = at - self.start_seq
        rate = done / max(now - self.started, 1e-9)
        left = max(0, self.target - at)
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        log.info(
            "catching up from %s: at %d of %d, %.0f events/s, ETA %s",
            self.where,
            at,
            self.target,
            rate,
            eta,
        )
