"""What ``statepump doctor`` concludes from what it found (pure): one line per finding, each with
what to do, and whether a new node would become ready.

The I/O side (:mod:`statepump.doctorcommand`) gathers :class:`Facts` with the same settings as
``statepump run``: the hub's partitions and bounds, the newest snapshot and why older or newer
ones are passed over, Capture's coverage, and the free receiver slots of each consumer group of
the pool. :func:`assess` decides; it uses the pump's own plan (:func:`statepump.core.plan.next_step`),
so the doctor and a starting node cannot disagree about where the events come from.

>>> from statepump.core.events import PartitionBounds
>>> facts = Facts(partition="0", partitions=("0",), bounds=PartitionBounds(0, 99), snapshot_sequence=49,
...               snapshot_age=60.0, free_slots={"web-1": 2, "web-2": 0})
>>> for finding in assess(facts):
...     print(finding.line())
ok: the hub answers; it has one partition, 0
ok: a new node loads the snapshot at 49 (60 s old) and reads 50 events from the hub
ok: 2 more readers can start: web-1 2 free, web-2 full
>>> would_start(assess(facts))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from statepump.core import plan
from statepump.core.errors import SequenceGapError
from statepump.core.events import PartitionBounds


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report; ``fatal`` findings mean a new node would not become ready."""

    ok: bool
    what: str
    todo: str | None = None
    fatal: bool = False

    def line(self) -> str:
        """``ok: ...`` or ``problem: ...; TODO``.

        >>> Finding(False, "no hub", "check --connection-string", fatal=True).line()
        'problem: no hub; check --connection-string'
        """
        if self.ok:
            return f"ok: {self.what}"
        return f"{'problem' if self.fatal else 'warning'}: {self.what}" + (f"; {self.todo}" if self.todo else "")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the doctor found; ``None`` where it could not look (the matching ``*_error`` says why)."""

    partition: str
    partitions: Sequence[str] | None = None
    bounds: PartitionBounds | None = None
    hub_error: str | None = None
    #: The newest snapshot this reducer can use (``None``: none), its age in seconds.
    snapshot_sequence: int | None = None
    snapshot_age: float | None = None
    store_error: str | None = None
    #: Snapshots newer than the one used, passed over, with why (another reducer, damaged, ...).
    passed_over: Sequence[tuple[int, str]] = ()
    #: ``None``: Capture not configured; else its bounds, or ``capture_error``.
    capture: PartitionBounds | None = None
    capture_configured: bool = False
    capture_error: str | None = None
    #: Free receiver slots per consumer group of the pool (0: full), or the group's error.
    free_slots: Mapping[str, int] = field(default_factory=dict)
    group_errors: Mapping[str, str] = field(default_factory=dict)
    readers_per_group: int = 5


def assess(facts: Facts) -> list[Finding]:
    """Every finding, in the order a starting node meets them: hub, snapshot, events, readers slot."""
    findings = [_hub(facts)]
    if facts.partitions is not None and len(facts.partitions) > 1:
        others = ", ".join(p for p in facts.partitions if p != facts.partition)
        findings.append(
            Finding(
                False,
                f"the hub has {len(facts.partitions)} partitions; a pump reads only {facts.partition}",
                f"send every event to partition {facts.partition} (events on {others} are never applied), "
                "or use a hub of one partition",
            )
        )
    findings.extend(_snapshots(facts))
    if facts.bounds is not None and facts.store_error is None:
        findings.append(_plan(facts))
    if facts.free_slots or facts.group_errors:
        findings.extend(_slots(facts))
    return findings


def would_start(findings: Sequence[Finding]) -> bool:
    """Whether a new node would become ready: no fatal finding."""
    return not any(f.fatal for f in findings)


def _hub(facts: Facts) -> Finding:
    if facts.hub_error is not None or facts.partitions is None:
        return Finding(
            False,
            f"the hub does not answer: {facts.hub_error or 'no answer'}",
            "check --connection-string or --namespace (and the identity's Azure Event Hubs Data Receiver role), "
            "--eventhub, and the network",
            fatal=True,
        )
    if facts.partition not in facts.partitions:
        return Finding(
            False,
            f"the hub has no partition {facts.partition} (it has {', '.join(facts.partitions)})",
            "set --partition",
            fatal=True,
        )
    if len(facts.partitions) == 1:
        return Finding(True, f"the hub answers; it has one partition, {facts.partition}")
    return Finding(True, f"the hub answers; it has {len(facts.partitions)} partitions")


def _snapshots(facts: Facts) -> list[Finding]:
    if facts.store_error is not None:
        return [
            Finding(
                False,
                f"the snapshots cannot be read: {facts.store_error}",
                "check --snapshot-dir or --snapshot-container and the storage settings (the identity needs "
                "Storage Blob Data Reader)",
                fatal=True,
            )
        ]
    findings = []
    for sequence, reason in facts.passed_over:
        findings.append(
            Finding(
                False,
                f"the snapshot at {sequence} is not used: {reason}",
                "run the snapshotter with this reducer (--rebuild for a new reducer version)",
            )
        )
    return findings


def _plan(facts: Facts) -> Finding:
    assert facts.bounds is not None
    position = facts.snapshot_sequence if facts.snapshot_sequence is not None else -1
    coverage = plan.CaptureCoverage.off()
    if facts.capture_configured:
        coverage = (
            plan.CaptureCoverage(True, facts.capture) if facts.capture_error is None else plan.CaptureCoverage.off()
        )
    start = (
        f"loads the snapshot at {position} ({facts.snapshot_age:.0f} s old)"
        if facts.snapshot_sequence is not None and facts.snapshot_age is not None
        else "has no snapshot and starts from the earliest event"
    )
    try:
        step = plan.next_step(position, facts.bounds, coverage)
    except plan.PositionAheadError as exc:
        return Finding(False, str(exc), "point the pump at the hub its snapshots come from", fatal=True)
    except SequenceGapError as gap:
        todo = "run the snapshotter more often than the hub's retention" + (
            "" if facts.capture_configured else ", or configure Capture (--capture-container)"
        )
        if facts.capture_error is not None:
            todo = (
                f"Capture cannot be read ({facts.capture_error}): check --capture-container and --capture-name-format"
            )
        return Finding(False, f"a new node would not be ready: {gap}", todo, fatal=True)
    if isinstance(step, plan.ProbeCapture):  # Capture configured, its bounds unread: the doctor always reads them
        return Finding(False, "Capture's coverage is unknown", "check --capture-container", fatal=True)
    from_hub = max(0, facts.bounds.last - max(position, facts.bounds.first - 1))
    if isinstance(step, plan.ReadCapture):
        return Finding(
            True,
            f"a new node {start}, reads {step.after + 1}..{step.through} from Capture (the hub's retention "
            f"dropped them) and {from_hub} events from the hub",
        )
    skipped = f" (events {step.skipped.first}..{step.skipped.last} are gone: skipped)" if step.skipped else ""
    return Finding(True, f"a new node {start} and reads {from_hub} events from the hub{skipped}")


def _slots(facts: Facts) -> list[Finding]:
    findings = [
        Finding(
            False,
            f"consumer group {group}: {error}",
            "create it (deploy/azure/main.bicep) or fix --consumer-group",
            fatal=True,
        )
        for group, error in facts.group_errors.items()
    ]
    free = sum(facts.free_slots.values())
    listing = ", ".join(f"{g} {n} free" if n else f"{g} full" for g, n in facts.free_slots.items())
    if free:
        findings.append(Finding(True, f"{free} more readers can start: {listing}"))
    elif facts.free_slots:
        groups = len(facts.free_slots) + len(facts.group_errors)
        findings.append(
            Finding(
                False,
                f"all {groups} consumer groups of partition {facts.partition} have {facts.readers_per_group} readers",
                "add groups or use a relay",
                fatal=True,
            )
        )
    return findings
