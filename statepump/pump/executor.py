"""The executor: load a snapshot, catch up, tail the hub, publish versions.

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
        Done        -> ready; the loop ends (only with ``until``).

The loop ends when it is done, when :meth:`Executor.stop` is called, or on
a failure (``failure`` is set). A poison event under the ``stop`` policy
halts it (not ready, still serving): ``_seek_release`` then reads on without
applying, for a control event that skips it (:mod:`statepump.core.control`);
found, the event is skipped and the loop plans again from it, so the events
after it are read again and folded in order. With ``until`` (the snapshotter,
time travel) the search ends at the hub's last event as it was then, and the
loop ends there when no skip was found. A hub that goes away after the pump has been
ready is waited out: not ready, still serving, retrying; before that, it is
a failure, so that ``statepump run`` exits 1.

What readers see goes through a :class:`~statepump.pump.published.Publishing`
only: publish a version, ready or not ready and why, wake. Live, every batch
is published; while catching up, the batches go into one open ``Folder``
published about once a second (``_apply``). The counters, the poison events
and the skipped ranges stay here, for ``Pump.status()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from statepump.core import collector, control, plan
from statepump.core.errors import SequenceGapError, ServiceUnavailable, StatepumpError
from statepump.core.events import Event, PartitionBounds, Version
from statepump.core.fold import Fed, Folder, FoldGap, FoldResult, Poisoned, PoisonPolicy, Rejection
from statepump.core.history import History, Outcome
from statepump.core.reducer import Reducer
from statepump.pump.published import Publishing
from statepump.sources import EventSource
from statepump.stores import SnapshotStore
from statepump.stores.deadletters import DeadLetter
from statepump.stores.snapshots import Loaded, load_latest

S = TypeVar("S")
log = logging.getLogger("statepump.pump")

#: Seconds between the versions a catch-up publishes (``Pump(catchup_publish_interval=...)``).
CATCHUP_PUBLISH_INTERVAL = 1.0


class Executor(Generic[S]):
    """Runs the loop above for one partition; a :class:`~statepump.pump.Pump` owns one.

    The parameters are the :class:`~statepump.pump.Pump`'s, less those that
    are only its own; ``publisher`` is the one door to what readers see.
    """

    def __init__(
        self,
        publisher: Publishing[S],
        source: EventSource,
        *,
        reducer: Reducer[S],
        store: SnapshotStore | None,
        capture: EventSource | None,
        eventhub: str,
        partition: str,
        poison_policy: PoisonPolicy,
        dead_letter: DeadLetter | None,
        allow_gap: bool,
        hmac_key: bytes | None,
        gc_interval: float,
        replan_interval: float,
        progress_interval: float,
        until: int | None,
        catchup_publish_interval: float,
        history: History,
    ) -> None:
        self._publisher = publisher
        self.history = history
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
        self.catchup_publish_interval = catchup_publish_interval
        self.until = until

        self.loaded: Loaded[S] | None = None
        #: The gap that stopped the pump, until a hub read starts again.
        self.gap: SequenceGapError | None = None
        #: The hub's last event (sequence, enqueued time) as the last bounds read saw it.
        self.hub_last: tuple[int, datetime | None] | None = None
        self.counts: dict[str, int] = {
            "events_from_capture": 0,
            "events_from_hub": 0,
            "events_from_memory": 0,
            "duplicates_skipped": 0,
            "poison_events": 0,
            "events_rejected": 0,
            "events_skipped_by_gap": 0,
            "poison_events_skipped_by_control": 0,
            "fold_batches": 0,
        }
        self.fold_seconds_total = 0.0
        self.poisoned: list[Poisoned] = []  # the most recent poison events, newest last (bounded)
        self.rejected: list[Rejection] = []  # the most recent rejected events, newest last (bounded)
        self.skipped_ranges: list[plan.Skipped] = []
        #: Poison events a control event released this pump from (skipped), oldest first (bounded).
        self.released: list[tuple[Poisoned, control.Skip]] = []
        #: The poison event the pump is halted on, and how far it has read on looking for its skip.
        self.halted: tuple[Poisoned, int] | None = None
        self.collector = collector.Collector(gc_interval)

        self._was_ready = False
        # The catch-up's open fold: events folded but not yet published (see _apply).
        self._folder: Folder[S] | None = None
        self._folder_opened = 0.0
        self._early_bounds: asyncio.Task[PartitionBounds] | None = None
        self._stopping = asyncio.Event()

    @property
    def version(self) -> Version[S]:
        return self._publisher.version

    @property
    def folded_sequence(self) -> int:
        """The last event folded: ahead of ``version.sequence`` while a catch-up holds its fold open."""
        folder = self._folder
        return folder.sequence if folder is not None else self.version.sequence

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task of the running event loop; readers are told when it ends, however it ends."""
        self._stopping = asyncio.Event()
        task = asyncio.create_task(self._run(), name="statepump")
        task.add_done_callback(lambda _: self._publisher.mark_ended())
        return task

    def stop(self) -> None:
        """Ask the loop to end after the batch in hand (the caller cancels the task as well)."""
        self._stopping.set()

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        self.collector.start()
        # Connecting to the hub takes about a second: let it happen while the
        # snapshot loads. The bounds it reads are a little stale by the time
        # they are used, which is safe: retention only moves forward, and a hub
        # read that finds its first event missing makes the loop plan again.
        self._early_bounds = asyncio.create_task(self.source.bounds(), name="statepump-first-bounds")
        try:
            await self._load()
            self.history.clear(at=self.version.sequence)
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
                except _Halted as halted:
                    if not await self._seek_release(halted.poisoned):
                        break
                    coverage = plan.CaptureCoverage.unknown() if self.capture else plan.CaptureCoverage.off()
        except (asyncio.CancelledError, _Stop):
            pass
        except plan.PositionAheadError as exc:
            self._publisher.mark_failed(exc)
        except StatepumpError as exc:  # a failure statepump explains itself: one line, no traceback
            log.error("the pump stopped: %s", exc)
            self._publisher.mark_failed(exc)
        except Exception as exc:
            log.exception("the pump stopped: %s", exc)
            self._publisher.mark_failed(exc)
        finally:
            early, self._early_bounds = self._early_bounds, None
            if early is not None:
                early.cancel()
                if early.done() and not early.cancelled():
                    early.exception()  # retrieved: the load's own error is the one that matters
            self.collector.stop()
            self._publisher.wake()

    async def _advance(self, coverage: plan.CaptureCoverage) -> plan.CaptureCoverage | None:
        """One round of the loop: plan from fresh bounds and carry out the step; ``None`` when done."""
        early, self._early_bounds = self._early_bounds, None
        bounds = await (early if early is not None else self.source.bounds())
        self.hub_last = (bounds.last, bounds.last_enqueued_time)
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
            if step.skipped.reason == "no-snapshot" and self.source.kind == "relay":
                # A relay's ring is not the hub's retention: the events it no longer keeps still exist,
                # so skipping them would serve a wrong state. Wait for a snapshot that stands for them.
                first, last = step.skipped.first, step.skipped.last
                why = "(the upstream keeps no earlier events, and no usable snapshot stands for them)"
                await self._stopped_by_gap(SequenceGapError(first, last_missing=last, where=why))
                return coverage
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
        if self._publisher.ready or self._publisher.phase != "waiting for the hub":
            log.error("not serving as ready: %s; serving sequence %d and retrying", exc, self.version.sequence)
        self._publisher.mark_not_ready("waiting for the hub", f"{exc}; serving sequence {self.version.sequence}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.replan_interval)

    async def _load(self) -> None:
        self._publisher.set_phase("loading snapshot")
        if self.store is None:
            return
        started = time.perf_counter()
        loaded = await load_latest(
            self.store, self.reducer, eventhub=self.eventhub, partition=self.partition, hmac_key=self.hmac_key
        )
        self.loaded = loaded
        # A rejected snapshot is logged once, with its reason, by load_latest ("snapshot ... not used").
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
            self._publisher.publish(loaded.version)

    async def _read_capture(self, step: plan.ReadCapture) -> None:
        assert self.capture is not None
        self._publisher.set_phase(f"catching up from Capture to {step.through}")
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
        self._publisher.set_phase(f"catching up from the hub to {target}", clear_problem=True)
        self.gap = None
        if self.version.sequence >= target and not self._upstream_not_ready() and not self._reader_waiting():
            self._become_ready()
        progress = _Progress(self, target, "the hub")
        try:
            async with _reading(_gaps_as_fold_gaps(self.source.read(step.after))) as batches:
                async for batch in batches:
                    if step.until is not None and batch and batch[-1].sequence > step.until:
                        batch = [e for e in batch if e.sequence <= step.until]
                    try:
                        self._apply(batch, self.source.kind, catching_up_to=None if self._publisher.ready else target)
                    except FoldGap as gap:
                        log.warning("%s; planning again (Capture may hold the missing events)", gap)
                        return
                    if self._upstream_not_ready():
                        # The upstream is catching up itself: caught up means with where it is now.
                        seen = self.source.last_enqueued
                        target = max(target, seen[0]) if seen is not None else target
                    elif self._reader_waiting():
                        pass
                    elif not self._publisher.ready:
                        progress.tick()
                        if self.version.sequence >= target:
                            self._become_ready()
                    self.collector.maybe_collect()
                    if self._stopping.is_set():
                        raise _Stop
                    if step.until is not None and self.version.sequence >= step.until:
                        return  # the loop re-plans and gets Done
        finally:
            self._publish_folded()

    def _upstream_not_ready(self) -> bool:
        """A relay source whose upstream is not ready holds this pump not ready, with the upstream's reason."""
        problem: str | None = getattr(self.source, "upstream_problem", None)
        if problem is None:
            if self._publisher.phase == "waiting for the upstream":
                self._publisher.set_phase(f"following the upstream at {self.version.sequence}", clear_problem=True)
            return False
        if self._publisher.ready or self._publisher.phase != "waiting for the upstream":
            log.warning("not serving as ready: the upstream is not ready: %s", problem)
        self._publisher.mark_not_ready("waiting for the upstream", f"upstream not ready: {problem}")
        return True

    def _reader_waiting(self) -> bool:
        """Whether the source has no receiver slot yet: a pump is ready only while it reads the hub.

        An Event Hubs source whose consumer groups are all full (``reader_problem``) holds the pump
        not ready, with that one line, still serving its last version; one that is still attaching
        (``receiving`` false) only delays readiness. Other sources have neither.
        """
        problem: str | None = getattr(self.source, "reader_problem", None)
        if problem is not None:
            if self._publisher.ready or self._publisher.phase != "waiting for a consumer group":
                log.error("not serving as ready: %s; serving sequence %d", problem, self.version.sequence)
            self._publisher.mark_not_ready("waiting for a consumer group", problem)
            return True
        if self._publisher.phase == "waiting for a consumer group":
            self._publisher.set_phase(f"reading the hub at {self.version.sequence}", clear_problem=True)
        return not self._publisher.ready and not getattr(self.source, "receiving", True)

    def _become_ready(self) -> None:
        self._was_ready = True
        log.info("live: caught up at sequence %d", self.version.sequence)
        self._publisher.mark_ready()

    async def _stopped_by_gap(self, gap: SequenceGapError) -> None:
        if await self._reload_past(gap):
            return
        if self.gap is None or str(self.gap) != str(gap):
            log.error("not serving as ready: %s; re-checking every %g s", gap, self.replan_interval)
        self.gap = gap
        self._publisher.mark_not_ready("stopped by a gap", str(gap))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.replan_interval)

    async def _reload_past(self, gap: SequenceGapError) -> bool:
        """Load a snapshot newer than the position, when the store has one: a gap it heals is no gap.

        A relay that no longer holds our next event serves a newer snapshot; a
        snapshotter may also have written one past a hole in the hub.
        """
        if self.store is None:
            return False
        try:
            loaded = await load_latest(
                self.store, self.reducer, eventhub=self.eventhub, partition=self.partition, hmac_key=self.hmac_key
            )
        except (StatepumpError, OSError) as exc:
            log.warning("%s; no newer snapshot to load: %s", gap, exc)
            return False
        if loaded.meta is None or loaded.version.sequence <= self.version.sequence:
            return False
        log.warning(
            "%s; loaded the newer snapshot at sequence %d from %s instead",
            gap,
            loaded.version.sequence,
            self.store.description,
        )
        self.loaded = loaded
        self.history.clear(at=loaded.version.sequence)
        self._publisher.publish(loaded.version)
        return True

    def _skip(self, skipped: plan.Skipped) -> None:
        how = "no snapshot, and no source holds them any more" if skipped.reason == "no-snapshot" else "--allow-gap"
        log.warning("skipping events %d..%d (%d events): %s", skipped.first, skipped.last, skipped.count, how)
        self.counts["events_skipped_by_gap"] += skipped.count
        self.skipped_ranges.append(skipped)
        self.history.clear(at=skipped.last)
        v = self.version
        # What the skipped events changed is unknown: every path may have changed up to skipped.last.
        changed = v.changed.raised_to(skipped.last) if v.changed is not None else None
        self._publisher.publish(
            Version(v.state, skipped.last, v.enqueued_time, v.partition, datetime.now(UTC), changed)
        )

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
        self.history.record(batch, through=folder.sequence, outcomes=_outcomes(fed))
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
            partial = FoldResult(self.version, fed.applied, fed.duplicates, fed.skipped, rejected=fed.rejected)
            raise FoldGap(*fed.gap, partial)  # type: ignore[arg-type]
        if fed.stopped is not None:
            self._poisoned(fed.stopped)
            raise _Halted(fed.stopped)

    def _publish_folded(self) -> None:
        """Publish what the open fold holds, and close it (a no-op when there is none)."""
        folder, self._folder = self._folder, None
        if folder is None or not folder.pending:
            return
        with collector.paused():
            new = folder.freeze(datetime.now(UTC))
        self._publisher.publish(new)

    def _account(self, fed: Fed, origin: str) -> None:
        self.counts["fold_batches"] += 1
        self.counts[f"events_from_{origin}"] = self.counts.get(f"events_from_{origin}", 0) + fed.applied
        self.counts["duplicates_skipped"] += fed.duplicates
        if fed.rejected:
            self.counts["events_rejected"] += len(fed.rejected)
            self.rejected = [*self.rejected[-100:], *fed.rejected[-100:]][-100:]
            for rejection in fed.rejected:
                log.warning("event %d rejected (state unchanged): %s", rejection.event.sequence, rejection.reason)
        for order in fed.controls:
            released = any(c.sequence == order.sequence for _, c in self.released)
            effect = "it released this pump" if released else "no effect here (not a poison event that stopped it)"
            log.info("control event %d: %s; %s", order.sequence, order.describe(), effect)
        for poisoned in fed.skipped:
            self._record_poison(poisoned)
            if self.dead_letter is not None:
                self.dead_letter.record(poisoned, reducer=self.reducer.identity)
            log.error("poison event %d skipped (policy skip): %s", poisoned.event.sequence, poisoned.error)

    def _record_poison(self, poisoned: Poisoned) -> None:
        self.counts["poison_events"] += 1
        self.poisoned = [*self.poisoned[-99:], poisoned]

    def _poisoned(self, poisoned: Poisoned) -> None:
        self._record_poison(poisoned)
        n = poisoned.event.sequence
        problem = (
            f"poison event {n} on partition {poisoned.event.partition}: {poisoned.error}; "
            f"serving sequence {self.version.sequence} (policy stop)"
        )
        first_seen = self._dead_letter_seen(poisoned)
        if first_seen is None:
            log.error(  # the words of every line that ends readiness
                "not serving as ready: %s; `statepump skip %d --reason ...` releases every node", problem, n
            )
        else:
            # Recorded before (a restart, a snapshotter run): the story was told then; say only where we are.
            log.warning(
                "not serving as ready: still stopped at poison event %d (first seen %s); see `statepump skip`",
                n,
                first_seen,
            )
        self.halted = (poisoned, n)
        self._publisher.mark_not_ready("stopped by a poison event", problem)

    def _dead_letter_seen(self, poisoned: Poisoned) -> str | None:
        """Record a halting poison event in the dead-letter sink; when it was there already, since when.

        The sink's record is the marker that survives restarts: one per
        partition, sequence number and reducer, whichever process met it.
        Not storing it only costs the shorter line, so a failure is a warning.
        """
        if self.dead_letter is None:
            return None
        try:
            earlier = self.dead_letter.record(poisoned, reducer=self.reducer.identity)
        except Exception as exc:
            log.warning("poison event %d not recorded as a dead letter: %s", poisoned.event.sequence, exc)
            return None
        return str(earlier.get("recorded_at") or "before") if earlier is not None else None

    async def _seek_release(self, poisoned: Poisoned) -> bool:
        """Halted on ``poisoned``: read on, applying nothing, until a control event skips it; True once skipped.

        Only the position is held while reading (not the events passed over):
        once the skip is found, the loop plans again from the skipped event and
        reads the events after it again. With ``until``, the search ends at the
        hub's last event as it is now (False when no skip is found by then).
        """
        n = poisoned.event.sequence
        position, horizon = n, None
        while not self._stopping.is_set():
            found: control.Skip | None = None
            try:
                bounds = await self.source.bounds()
                if self.until is not None:
                    horizon = bounds.last if horizon is None else horizon
                    if position >= horizon:
                        return False
                if self.capture is not None and position + 1 < bounds.first:
                    held = await self.capture.bounds()  # retention dropped events after n: Capture has them
                    through = min(held.last, bounds.first - 1)
                    if through > position:
                        found, position = await self._scan(self.capture, n, position, through)
                if found is None:
                    found, position = await self._scan(self.source, n, max(position, bounds.first - 1), horizon)
            except ServiceUnavailable as exc:
                if self.until is not None:
                    raise
                log.warning("looking for a skip of poison event %d: %s; retrying", n, exc)
            if found is not None:
                self._release(poisoned, found)
                return True
            if self.until is not None and horizon is not None and position >= horizon:
                return False
            with contextlib.suppress(TimeoutError):  # the read ended early (a gap, an outage): try again
                await asyncio.wait_for(self._stopping.wait(), self.replan_interval)
        return False

    async def _scan(
        self, source: EventSource, halted_at: int, after: int, through: int | None
    ) -> tuple[control.Skip | None, int]:
        """Read ``source`` after ``after`` (through ``through``) for the skip of ``halted_at``; (skip, position)."""
        position = after
        if self._stopping.is_set():
            raise _Stop  # stopped while the bounds were read: the source may be closed already
        async with _reading(_gaps_as_fold_gaps(source.read(after))) as batches:
            async for batch in batches:
                for event in batch:
                    if event.sequence <= position:
                        continue
                    position = event.sequence
                    found = control.release_of(event, halted_at)
                    if found is not None:
                        return found, position
                    if through is not None and position >= through:
                        return None, position
                if self.halted is not None:
                    self.halted = (self.halted[0], position)
                if self._stopping.is_set():
                    raise _Stop
                if through is not None and position >= through:
                    break
        return None, position

    def _release(self, poisoned: Poisoned, order: control.Skip) -> None:
        """Skip ``poisoned`` as ``order`` says: the state stays, the version moves to it; the loop reads on after it."""
        event = poisoned.event
        self.halted = None
        self.counts["poison_events_skipped_by_control"] += 1
        self.released = [*self.released[-99:], (poisoned, order)]
        log.warning(
            "poison event %d skipped by control event %d (%s); applying the events after it",
            event.sequence,
            order.sequence,
            order.reason,
        )
        why = f"{poisoned.error}; skipped by control event {order.sequence}: {order.reason}"
        self.history.record([event], through=event.sequence, outcomes={event.sequence: ("skipped", why)})
        v = self.version
        self._publisher.set_phase(f"catching up after skipped poison event {event.sequence}", clear_problem=True)
        self._publisher.publish(
            Version(v.state, event.sequence, event.enqueued_time, v.partition, datetime.now(UTC), v.changed)
        )


def _outcomes(fed: Fed) -> dict[int, tuple[Outcome, str]] | None:
    """What the ring records beside "applied": the batch's rejected and poisoned events."""
    if not fed.skipped and not fed.rejected and not fed.controls:
        return None
    outcomes: dict[int, tuple[Outcome, str]] = {r.event.sequence: ("rejected", r.reason) for r in fed.rejected}
    outcomes.update((p.event.sequence, ("poisoned", p.error)) for p in fed.skipped)
    outcomes.update((c.sequence, ("control", c.describe())) for c in fed.controls)
    return outcomes


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


async def _gaps_as_fold_gaps(batches: AsyncIterator[Sequence[Event]]) -> AsyncIterator[Sequence[Event]]:
    """A source that knows of a gap before any event shows it (a relay's 410) ends the read as a fold's gap would."""
    try:
        async for batch in batches:
            yield batch
    except SequenceGapError as gap:
        log.warning("%s; planning again", gap)
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


class _Stop(Exception):
    """Ends the pump's loop quietly (stop requested)."""


class _Halted(Exception):
    """A poison event under the ``stop`` policy: the loop looks for a control event that skips it."""

    def __init__(self, poisoned: Poisoned) -> None:
        super().__init__(poisoned.error)
        self.poisoned = poisoned


class _Progress:
    """Logs catch-up progress (position, events/s, ETA) at most every ``interval`` seconds."""

    def __init__(self, executor: Executor[Any], target: int, where: str) -> None:
        self.executor = executor
        self.target = target
        self.where = where
        self.start_seq = executor.folded_sequence
        self.started = self.last_log = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_log < self.executor.progress_interval:
            return
        self.last_log = now
        at = self.executor.folded_sequence
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
