"""Where poison events go under the ``skip`` policy, for later inspection.

A dead letter keeps everything needed to replay or diagnose the event:
partition, sequence number, the reducer's error, and the body (base64, since
a poison body is by definition not to be trusted as text).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from statepump.fold import Poisoned


def record_of(poisoned: Poisoned) -> dict[str, Any]:
    """The JSON record of one poison event.

    >>> from statepump.events import Event
    >>> e = Event("0", 7, "7", datetime(2026, 1, 1, tzinfo=UTC), None, {}, b"{bad")
    >>> record_of(Poisoned(e, "OperationError: bad"))["sequence"]
    7
    """
    e = poisoned.event
    return {
        "partition": e.partition,
        "sequence": e.sequence,
        "offset": e.offset,
        "enqueued_time": e.enqueued_time.isoformat(),
        "error": poisoned.error,
        "body_base64": base64.b64encode(e.body).decode(),
        "recorded_at": datetime.now(UTC).isoformat(),
    }


class DeadLetter(Protocol):
    def record(self, poisoned: Poisoned) -> None: ...


class DeadLetterFile:
    """Appends one JSON line per poison event to a file, fsynced, so none is lost in a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, poisoned: Poisoned) -> None:
        line = json.dumps(record_of(poisoned), separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        """Every record written so far (for tests and ``statepump`` tooling)."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
