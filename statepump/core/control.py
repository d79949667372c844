"""Control events: how an operator releases every node halted on a poison event, from the log itself.

A poison event stops every pump with the ``stop`` policy at the same event
(the fold is deterministic), and the snapshotter with them. Restarting each
node with ``--poison-policy skip`` would release them one by one, and a node
that replays the log later would have no way to know what the others did.
So the release is itself an event of the log: ``statepump skip N --reason R``
appends a *control event*, marked by the application property
:data:`CONTROL_PROPERTY` (``statepump-control: skip``), whose body names the
event to skip and why (:func:`skip_body`). Everything here is decided from
the log alone, so every node that reads it decides the same:

1. A control event is **never passed to the reducer**, on any node, whatever
   its body says: its outcome is ``control`` (a no-op on the state; the
   version moves past it), or ``rejected`` when its body is not a valid
   control body (a deterministic no-op too). The fold checks this before the
   reducer sees the event (:func:`is_control`).
2. A node halted on poison event ``N`` (policy ``stop``) keeps reading the
   log after ``N`` without applying anything, looking for **the first control
   event after N that names N** (:func:`release_of`). When it finds one, ``N``
   is *skipped*: the state stays as it was, the version moves to ``N``, and
   the events after ``N`` are folded again in order, as if ``N`` had been
   skipped by policy; the control event itself comes by as a no-op.
3. A skip of ``N`` has **no effect anywhere else**: on a node where ``N`` was
   applied or rejected (it was not poison there), on one with policy ``skip``
   (it already moved past ``N``), on one that loaded a snapshot past ``N``,
   and when the control event comes *before* ``N`` in the log (it names an
   event that did not exist yet). It is still recorded, as the control
   event's outcome.

Why this keeps every node on the same state: what makes ``N`` poison is its
body (undecodable) or a deterministic reducer raising, so every node with the
same reducer finds ``N`` poison, halts there, and is released by the same
control event (rule 2), which is exactly what a node with policy ``skip``
did on its own: skip ``N``, apply the rest. A node that replays later, from
scratch or from a snapshot older than ``N``, halts at ``N`` too and finds
the same control event further on. A reducer that fails only on some nodes
(not deterministic) has already made them diverge; a skip cannot undo an
event another node applied, and rule 3 keeps it from making things worse.

What a node holds while it looks: nothing but its position; the events it
passes over are not kept, and are read again from the source after ``N``
once the skip is found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from statepump.core.errors import Rejected
from statepump.core.events import Event

#: The application property that marks a control event, and its value for a skip.
CONTROL_PROPERTY: Final = "statepump-control"
SKIP: Final = "skip"

#: The longest reason a skip carries (it shows in status and logs on every node).
MAX_REASON: Final = 500


@dataclass(frozen=True, slots=True)
class Skip:
    """A control event's order: skip event ``target`` for ``reason``; ``event`` is the control event itself."""

    target: int
    reason: str
    event: Event

    @property
    def sequence(self) -> int:
        """Where the order is in the log."""
        return self.event.sequence

    def describe(self) -> str:
        """The control event's outcome, as the ring and ``GET /v1/events/N`` show it (the same on every node)."""
        return f"skip of event {self.target} requested: {self.reason}"


def is_control(event: Event) -> bool:
    """Whether ``event`` is a control event: never the reducer's, whatever its body.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> is_control(Event("0", 9, "9", now, None, {CONTROL_PROPERTY: SKIP}, b"{}"))
    True
    >>> is_control(Event("0", 9, "9", now, None, {}, b"{}"))
    False
    """
    return CONTROL_PROPERTY in event.properties


def skip_body(target: int, reason: str) -> bytes:
    """The body of a control event that skips ``target`` (what ``statepump skip`` sends).

    >>> skip_body(8, "typo in the push")
    b'{"skip":8,"reason":"typo in the push"}'
    """
    return json.dumps({"skip": target, "reason": reason}, separators=(",", ":")).encode()


def read(event: Event) -> Skip:
    """The order a control event carries; :class:`Rejected` (one line) when it carries none we understand.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> read(Event("0", 9, "9", now, None, {CONTROL_PROPERTY: SKIP}, skip_body(8, "typo"))).describe()
    'skip of event 8 requested: typo'
    >>> read(Event("0", 9, "9", now, None, {CONTROL_PROPERTY: "undo"}, b"{}"))
    Traceback (most recent call last):
    ...
    statepump.core.errors.Rejected: control event: unknown kind 'undo' (statepump-control: skip is the only one)
    """
    kind = event.properties.get(CONTROL_PROPERTY)
    if kind != SKIP:
        raise Rejected(f"control event: unknown kind {kind!r} ({CONTROL_PROPERTY}: {SKIP} is the only one)")
    try:
        body = json.loads(event.body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("control event: the body is not JSON") from None
    if not isinstance(body, dict):
        raise Rejected("control event: the body must be a JSON object")
    target, reason = body.get("skip"), body.get("reason")
    if not isinstance(target, int) or isinstance(target, bool) or target < 0:
        raise Rejected(f"control event: 'skip' must be a sequence number (an integer >= 0), not {target!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise Rejected("control event: 'reason' must be a non-empty string")
    return Skip(target, reason[:MAX_REASON], event)


def release_of(event: Event, halted_at: int) -> Skip | None:
    """The skip that releases a node halted on poison event ``halted_at``, if ``event`` is one (rule 2).

    Only a valid control event after ``halted_at`` that names it counts; a
    malformed one is no order at all (the fold rejects it on every node).

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> def ev(n, target, props={CONTROL_PROPERTY: SKIP}):
    ...     return Event("0", n, str(n), now, None, props, skip_body(target, "r"))
    >>> release_of(ev(12, 8), 8).target, release_of(ev(12, 7), 8), release_of(ev(5, 8), 8), release_of(ev(12, 8, {}), 8)
    (8, None, None, None)
    """
    if event.sequence <= halted_at or not is_control(event):
        return None
    try:
        order = read(event)
    except Rejected:
        return None
    return order if order.target == halted_at else None


def skip_refusal(target: int, *, hub_last: int, applied_through: int | None, halted_at: int | None) -> str | None:
    """Why ``statepump skip target`` should not be sent (the writer's check; ``--force`` overrides), or ``None``.

    ``hub_last`` is the partition's last sequence number; ``applied_through`` the
    sequence of the sidecar's version and ``halted_at`` its poison stop, when a
    sidecar answered. A skip of an event not in the log yet would come before
    it and never take effect (rule 3); one already folded past takes none either.

    >>> skip_refusal(8, hub_last=12, applied_through=7, halted_at=8) is None
    True
    >>> skip_refusal(20, hub_last=12, applied_through=None, halted_at=None)
    'event 20 is not in the log yet (its last event is 12): a skip only releases a poison event already written'
    >>> skip_refusal(5, hub_last=12, applied_through=7, halted_at=8)
    'event 5 was already folded past by the sidecar (it is at 7, stopped at poison event 8)'
    """
    if target < 0:
        return f"the sequence number must be >= 0, not {target}"
    if target > hub_last:
        return (
            f"event {target} is not in the log yet (its last event is {hub_last}): "
            "a skip only releases a poison event already written"
        )
    if applied_through is not None and target <= applied_through:
        stopped = f", stopped at poison event {halted_at}" if halted_at is not None else ""
        return f"event {target} was already folded past by the sidecar (it is at {applied_through}{stopped})"
    return None
