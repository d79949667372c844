"""Where poison events go under the ``skip`` policy, for later inspection: a file or a Blob container.

A dead letter keeps everything needed to replay or diagnose the event:
partition, sequence number, the reducer's error, and the body (base64, since
a poison body is by definition not to be trusted as text).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self

from statepump.core.fold import Poisoned


def record_of(poisoned: Poisoned) -> dict[str, Any]:
    """The JSON record of one poison event.

    >>> from statepump.core.events import Event
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


class DeadLetterBlob:
    """One blob per poison event in an Azure Blob container: ``{prefix}/{partition}/{sequence:020d}.json``.

    Each blob holds the JSON record of :func:`record_of`. Writes are
    create-only, so a pump that meets the same poison event again after a
    restart keeps the first record. Like :class:`DeadLetterFile`,
    :meth:`record` is synchronous: poison events are rare, and the pump must
    not move past an event whose record was not stored, so an upload that
    still fails after the client's retries raises (and stops the pump,
    saying why) instead of being dropped.

    Example::

        dead = DeadLetterBlob.from_connection_string(conn, "dead-letters")
        pump = Pump(source, poison_policy="skip", dead_letter=dead)
    """

    def __init__(self, container: Any, prefix: str = "dead-letter") -> None:
        self.container = container
        self.prefix = prefix.strip("/")

    @classmethod
    def from_connection_string(cls, connection_string: str, container: str, prefix: str = "dead-letter") -> Self:
        """A sync client (:func:`statepump.storage.containers.open_sync_container`), the SDK retrying 5 times."""
        from statepump.storage.containers import DEAD_LETTER_RETRY, open_sync_container

        opened = open_sync_container(container, connection_string=connection_string, retry=DEAD_LETTER_RETRY)
        return cls(opened.client, prefix)

    @classmethod
    def from_account_url(
        cls, account_url: str, container: str, credential: Any = None, prefix: str = "dead-letter"
    ) -> Self:
        """With ``credential`` (default, even with a SAS token in the URL:
        ``azure.identity.DefaultAzureCredential``: managed identity)."""
        from statepump.storage.containers import DEAD_LETTER_RETRY, open_sync_container

        opened = open_sync_container(
            container, account_url=account_url, credential=credential, retry=DEAD_LETTER_RETRY, identity_with_sas=True
        )
        return cls(opened.client, prefix)

    def name(self, poisoned: Poisoned) -> str:
        """Where the record of ``poisoned`` goes.

        >>> from statepump.core.events import Event
        >>> e = Event("1", 7, "7", datetime(2026, 1, 1, tzinfo=UTC), None, {}, b"{bad")
        >>> DeadLetterBlob(None).name(Poisoned(e, "bad"))
        'dead-letter/1/00000000000000000007.json'
        """
        return f"{self.prefix}/{poisoned.event.partition}/{poisoned.event.sequence:020d}.json"

    def record(self, poisoned: Poisoned) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        data = json.dumps(record_of(poisoned), separators=(",", ":")).encode()
        with contextlib.suppress(ResourceExistsError):  # recorded before a restart: keep the first record
            self.container.upload_blob(
                self.name(poisoned),
                data,
                overwrite=False,
                content_settings=ContentSettings(content_type="application/json"),
            )

    def read(self) -> list[dict[str, Any]]:
        """Every record, in partition and sequence order (for tests and tooling)."""
        names = sorted(b.name for b in self.container.list_blobs(name_starts_with=self.prefix + "/"))
        return [json.loads(self.container.download_blob(name).readall()) for name in names]

    def close(self) -> None:
        self.container.close()
