"""``statepump doctor``: check a deployment in seconds, with the settings of ``statepump run``.

It looks where a starting node would (the hub, the snapshots, Capture, the pool of consumer
groups), prints one line per finding with what to do (:mod:`statepump.core.doctor` decides), and
exits 0 when a new node would become ready, 1 otherwise.

Counting free receiver slots means taking them: for each group of the pool it attaches up to 5
receivers at once (at the partition's end, so they read nothing) and closes them all as soon as
the hub answered each, about two seconds in which a node starting at the same moment may be
refused once and move on to another group.

Example::

    statepump doctor --config /etc/statepump/statepump.toml
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from statepump.core.consumergroups import RECEIVERS_PER_PARTITION, pool_names
from statepump.core.doctor import Facts, assess, would_start
from statepump.core.errors import StatepumpError
from statepump.settings import Settings

log = logging.getLogger("statepump.doctor")

#: The doctor answers in seconds: it does not wait out a long outage as a pump would.
RETRY_SECONDS = 5.0


async def gather(settings: Settings) -> Facts:
    """Look at everything a starting node needs, never failing: what cannot be read is a fact too."""
    from statepump.components import make_capture, make_hub, make_store
    from statepump.eventhubs.failures import first_line
    from statepump.sources.eventhub import EventHubSource
    from statepump.stores.snapshots import load_latest

    settings = settings.model_copy(update={"retry_seconds": min(settings.retry_seconds, RETRY_SECONDS)})
    facts: dict[str, Any] = {"partition": settings.partition}
    hub = make_hub(settings)
    try:
        try:
            bounds = await hub.bounds()
            facts["bounds"] = bounds
            others = getattr(hub, "partitions_not_read", None)
            facts["partitions"] = [settings.partition, *(others or ())]
        except (StatepumpError, OSError) as exc:
            facts["hub_error"] = str(exc)
        reducer = settings.make_reducer()
        store = make_store(settings)
        try:
            loaded = await load_latest(
                store,
                reducer,
                eventhub=settings.resolved_eventhub(),
                partition=settings.partition,
                hmac_key=settings.hmac_key(),
            )
            if loaded.meta is not None:
                facts["snapshot_sequence"] = loaded.meta.sequence
                facts["snapshot_age"] = (datetime.now(UTC) - loaded.meta.created_at).total_seconds()
            facts["passed_over"] = [(r.ref.sequence, r.reason) for r in loaded.rejected]
        except (StatepumpError, OSError) as exc:
            facts["store_error"] = first_line(exc)
        finally:
            with contextlib.suppress(Exception):
                await store.close()
        capture = make_capture(settings)
        if capture is not None:
            facts["capture_configured"] = True
            try:
                facts["capture"] = await capture.bounds()
            except (StatepumpError, OSError) as exc:
                facts["capture_error"] = first_line(exc)
            finally:
                with contextlib.suppress(Exception):
                    await capture.close()
        if "bounds" in facts and isinstance(hub, EventHubSource):
            free, errors = await free_slots(hub, pool_names(settings.consumer_group), facts["bounds"].last)
            facts["free_slots"], facts["group_errors"] = free, errors
    finally:
        with contextlib.suppress(Exception):
            await hub.close()
    return Facts(**facts, readers_per_group=RECEIVERS_PER_PARTITION)


async def free_slots(
    hub: Any, groups: tuple[str, ...], position: int, per_group: int = RECEIVERS_PER_PARTITION
) -> tuple[dict[str, int], dict[str, str]]:
    """Free receiver slots of each group (attached at once, closed at once), and the groups that failed."""
    from statepump.eventhubs.failures import Failure, classify, first_line
    from statepump.eventhubs.receiver import Broken, PartitionReceiver

    async def probe(group: str) -> tuple[str, int, str | None]:
        receivers = [
            PartitionReceiver(hub.endpoint, partition=hub.partition, after=position, consumer_group=group)
            for _ in range(per_group)
        ]
        try:
            for receiver in receivers:
                receiver.start()
            answers = []
            for receiver in receivers:
                item = None
                while item is None:
                    item = await receiver.get(1.0)
                answers.append(item)
        finally:
            await asyncio.gather(*(r.close() for r in receivers), return_exceptions=True)
        held = sum(1 for a in answers if not isinstance(a, Broken))
        other = next(
            (a.error for a in answers if isinstance(a, Broken) and classify(a.error) is not Failure.RECEIVER_QUOTA),
            None,
        )
        if other is not None and not held:
            kind = classify(other)
            why = "does not exist" if kind is Failure.NOT_FOUND else hub.endpoint.redact(first_line(other))
            return group, 0, why
        return group, held, None

    results = await asyncio.gather(*(probe(g) for g in groups))
    return {g: n for g, n, e in results if e is None}, {g: e for g, _, e in results if e is not None}


async def doctor_command(settings: Settings) -> int:
    """Print the findings; 0 when a new node would become ready, 1 otherwise."""
    if settings.embedded:
        print(
            "problem: no hub configured; give --connection-string or --namespace (the embedded emulator of "
            "`statepump run` needs no check)"
        )
        return 1
    findings = assess(await gather(settings))
    for finding in findings:
        print(finding.line())
    ready = would_start(findings)
    print("a new node would become ready" if ready else "a new node would not become ready", file=sys.stderr)
    return 0 if ready else 1
