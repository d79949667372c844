"""One snapshotter run: load, catch up, write, prune.

The I/O shell around :mod:`snapshotter.target` and :mod:`snapshotter.retention`.
Everything that touches events or snapshot bytes is the pump's own code:
:func:`statepump.components.make_pump` builds the same pump ``statepump run``
uses, with ``until`` set to this run's target, and
:func:`statepump.stores.snapshots.write_snapshot` encodes and stores the result.

A run::

    hub_last = (await hub.bounds()).last           # the target, fixed now
    target   = highest free snapshot name <= hub_last
    pump     = make_pump(settings, until=target)   # loads the newest usable snapshot,
    await pump.wait_ready()                        # catches up: Capture, then the hub
    write_snapshot(...)                            # create-only; SnapshotExists = backed off
    retention.decide(...) -> delete

A gap (events neither the hub nor Capture holds) would leave the pump
re-planning forever; a run gives up at the first one and names the range.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from snapshotter import retention, target
from snapshotter.outcome import Deletion, Outcome
from snapshotter.pumplog import speaking_for_the_snapshotter
from snapshotter.store_view import StoreView
from statepump.components import make_hub, make_pump, make_store
from statepump.core.errors import SnapshotExists, StatepumpError
from statepump.pump import Pump, PumpFailed, StoppedAtGap
from statepump.settings import Settings
from statepump.sources import EventSource
from statepump.stores import SnapshotStore, snapshot_name
from statepump.stores.snapshots import write_snapshot

log = logging.getLogger("snapshotter")

#: How often a catching-up run checks whether its pump hit a gap.
GAP_POLL_SECONDS = 0.1


class SnapshotterFailed(StatepumpError):
    """A run could not produce its snapshot; the message is the one line the command prints."""


async def run_once(
    settings: Settings,
    *,
    source: EventSource | None = None,
    store: SnapshotStore | None = None,
    **pump_overrides: Any,
) -> Outcome:
    """One run as ``settings`` say; ``source``/``store`` replace the configured ones (tests, embedding).

    Closes the source; closes the store only if it made it.

    >>> import asyncio, tempfile
    >>> from statepump.settings import load
    >>> from statepump.sources.memory import MemorySource
    >>> hub = MemorySource()
    >>> _ = hub.append({"op": "set", "path": "greeting", "value": "hello"})
    >>> settings = load({"snapshot_dir": tempfile.mkdtemp()}, environ={})
    >>> asyncio.run(run_once(settings, source=hub)).action
    'written'
    """
    started = time.monotonic()
    owned_store = store is None
    store = store if store is not None else make_store(settings)
    source = source if source is not None else make_hub(settings)
    try:
        return await _run(settings, source, store, started, pump_overrides)
    finally:
        with contextlib.suppress(Exception):
            await source.close()  # the pump closes it too; closing twice is allowed
        if owned_store:
            await store.close()


async def _run(
    settings: Settings,
    source: EventSource,
    store: SnapshotStore,
    started: float,
    pump_overrides: dict[str, Any],
) -> Outcome:
    bounds = await source.bounds()
    refs = await store.list()
    hub_last = bounds.last
    common: dict[str, Any] = {"hub_first": bounds.first, "hub_last": hub_last, "rebuild": settings.rebuild}
    if hub_last < 0:
        return Outcome("empty-hub", None, None, 0, None, time.monotonic() - started, None, **common)
    aim = target.choose(hub_last, {r.sequence for r in refs})
    if aim is None:
        # Every name from 0 to the hub's last is taken: nothing can be written.
        log.info("every snapshot name up to the hub's last event %d is taken", hub_last)
        return await _finish(
            settings, store, Outcome("nothing-new", None, None, 0, None, 0.0, None, **common), None, started
        )
    if aim != hub_last:
        log.info(
            "the hub's last event %d has a snapshot already; if this reducer can use it there is nothing to "
            "write, else the new snapshot takes the newest free name, %d",
            hub_last,
            aim,
        )

    pump = make_pump(
        settings,
        source=source,
        store=StoreView(store, hide=settings.rebuild),
        until=aim,
        **pump_overrides,
    )
    log.info(
        "%s to sequence %d (hub holds %d..%d)",
        "rebuilding from the earliest event" if settings.rebuild else "catching up",
        aim,
        bounds.first,
        hub_last,
    )
    catch_up_started = time.monotonic()
    await _catch_up(pump, aim)
    catch_up_seconds = time.monotonic() - catch_up_started
    status = pump.status()
    applied = int(status["events_applied"])
    loaded_ref = pump.loaded.ref if pump.loaded else None
    loaded_meta = pump.loaded.meta if pump.loaded else None
    if applied:
        log.info(
            "caught up at %d: %d events in %.2f s (%.0f events/s)",
            pump.version.sequence,
            applied,
            catch_up_seconds,
            applied / max(catch_up_seconds, 1e-9),
        )
    else:
        # Reached by loading a snapshot at or past the target: there was nothing to fold.
        log.info("the snapshot at %d is this reducer's; no event after it to fold", pump.version.sequence)
    common.update(
        started_from=loaded_ref.name if loaded_ref else None,
        events_from_capture=int(status["events_from_capture"]),
        events_from_hub=int(status["events_from_hub"]),
        events_skipped=int(status["events_skipped_by_gap"]),
    )
    timings = {"catch_up": catch_up_seconds}
    if applied == 0 or pump.version.sequence <= (loaded_ref.sequence if loaded_ref else -1):
        outcome = Outcome(
            "nothing-new",
            loaded_ref.name if loaded_ref else None,
            loaded_ref.sequence if loaded_ref else None,
            0,
            loaded_meta.events_folded if loaded_meta else None,
            0.0,
            None,
            timings=timings,
            **common,
        )
        return await _finish(settings, store, outcome, loaded_ref.sequence if loaded_ref else None, started)

    total = (loaded_meta.events_folded if loaded_meta else 0) + applied
    write_started = time.monotonic()
    try:
        ref, size = await write_snapshot(
            store,
            pump.version,
            pump.reducer,
            eventhub=settings.resolved_eventhub(),
            events_folded=total,
            hmac_key=settings.hmac_key(),
            compress=settings.compress,
        )
    except SnapshotExists as exists:
        log.info("%s", exists)
        timings["write"] = time.monotonic() - write_started
        outcome = Outcome(
            "backed-off",
            snapshot_name(
                settings.snapshot_prefix, settings.resolved_eventhub(), settings.partition, pump.version.sequence
            ),
            pump.version.sequence,
            applied,
            total,
            0.0,
            None,
            timings=timings,
            **common,
        )
        # The other writer's snapshot is not verified here, so the newest
        # usable one known to this run is still the one it loaded.
        return await _finish(settings, store, outcome, loaded_ref.sequence if loaded_ref else None, started)
    timings["write"] = time.monotonic() - write_started
    log.info("wrote %s (%d bytes) in %.2f s", ref.name, size, timings["write"])
    outcome = Outcome("written", ref.name, ref.sequence, applied, total, 0.0, size, timings=timings, **common)
    return await _finish(settings, store, outcome, ref.sequence, started)


async def _catch_up(pump: Pump[Any], aim: int) -> None:
    """Run ``pump`` to ``aim``; raise :class:`SnapshotterFailed` on a gap, a poison event or a failure."""
    try:
        with speaking_for_the_snapshotter():
            await pump.run_to_target(gap_poll=GAP_POLL_SECONDS)
    except StoppedAtGap as gap:
        raise SnapshotterFailed(
            f"cannot reach sequence {aim}: events {gap.expected}..{gap.last_missing} are in neither the hub "
            f"nor Capture ({gap.reason})"
        ) from None
    except PumpFailed as exc:
        if pump.poisoned:
            poisoned = pump.poisoned[-1]
            raise SnapshotterFailed(
                f"cannot reach sequence {aim}: poison event {poisoned.event.sequence} on partition "
                f"{poisoned.event.partition} cannot be applied ({poisoned.error}); this reducer folds the events "
                f"only up to {pump.version.sequence}, so nothing is written (`statepump skip "
                f"{poisoned.event.sequence} --reason ...` releases every node; --poison-policy skip skips it and "
                "records it as a dead letter)"
            ) from None
        raise SnapshotterFailed(f"cannot reach sequence {aim}: {exc}") from None
    if pump.version.sequence < aim:
        raise SnapshotterFailed(
            f"cannot reach sequence {aim}: stopped at {pump.version.sequence} ({pump.not_ready_reason})"
        )


async def _finish(
    settings: Settings,
    store: SnapshotStore,
    outcome: Outcome,
    newest_usable: int | None,
    started: float,
) -> Outcome:
    """Apply retention, then stamp the outcome with what it deleted and the run's duration."""
    from dataclasses import replace

    retention_started = time.monotonic()
    refs = await store.list()
    decision = retention.decide(
        refs,
        retention.Policy(keep=settings.keep, keep_younger_than=settings.keep_younger_than),
        now=datetime.now(UTC),
        newest_usable=newest_usable,
        hub_first=outcome.hub_first,
        capture=settings.capture_dir is not None or settings.capture_container is not None,
    )
    deleted = []
    for ref in decision.delete:
        if not settings.dry_run:
            await store.delete(ref)
            log.info("retention: deleted %s", ref.name)
        deleted.append(Deletion(ref.name, ref.sequence, ref.size))
    timings = {**outcome.timings, "retention": time.monotonic() - retention_started}
    return replace(
        outcome,
        deleted=tuple(deleted),
        kept=len(decision.keep),
        dry_run=settings.dry_run,
        seconds=time.monotonic() - started,
        timings=timings,
    )
