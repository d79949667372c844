"""Where poison events go under the ``skip`` policy, for later inspection: a file or a Blob container.

A dead letter keeps everything needed to replay or diagnose the event:
partition, sequence number, the reducer (name@version) and its error, and the
body: as text when it is valid UTF-8 (``body_encoding: "utf-8"``), else
base64 (``"base64"``).

Once per sink. A pump that restarts, another sidecar writing to the same
sink, and every snapshotter run meet the same poison event again; each sink
records it once, by an idempotent key: partition, sequence number and reducer
identity (a new reducer version may fail differently, and that is worth a
record of its own). The file checks the key under an exclusive ``flock``
before it appends; the container names each blob by the key and creates it
only if absent. ``statepump dead-letters [--since N]`` lists the records.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self

from statepump.core.fold import Poisoned


def record_of(poisoned: Poisoned, reducer: str = "") -> dict[str, Any]:
    """The JSON record of one poison event (``reducer``: the identity of the reducer that failed).

    >>> from statepump.core.events import Event
    >>> e = Event("0", 7, "7", datetime(2026, 1, 1, tzinfo=UTC), None, {}, b"{bad")
    >>> r = record_of(Poisoned(e, "UndecodableBody: bad"), "config@1")
    >>> r["key"], r["body"], r["body_encoding"]
    ('0/7/config@1', '{bad', 'utf-8')
    >>> binary = Event("0", 8, "8", datetime(2026, 1, 1, tzinfo=UTC), None, {}, bytes([255]))
    >>> r = record_of(Poisoned(binary, "UndecodableBody: bad"), "config@1")
    >>> r["body"], r["body_encoding"]
    ('/w==', 'base64')
    """
    e = poisoned.event
    try:
        body, encoding = e.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(e.body).decode(), "base64"
    return {
        "key": key_of(e.partition, e.sequence, reducer),
        "partition": e.partition,
        "sequence": e.sequence,
        "offset": e.offset,
        "enqueued_time": e.enqueued_time.isoformat(),
        "reducer": reducer,
        "error": poisoned.error,
        "body": body,
        "body_encoding": encoding,
        "recorded_at": datetime.now(UTC).isoformat(),
    }


def key_of(partition: str, sequence: int, reducer: str) -> str:
    """The idempotent key of a dead letter: one record per partition, sequence number and reducer identity."""
    return f"{partition}/{sequence}/{reducer}"


def body_bytes(record: dict[str, Any]) -> bytes:
    """The event body a record holds, whichever way it was stored.

    >>> body_bytes({"body": "/w==", "body_encoding": "base64"}), body_bytes({"body": "{}", "body_encoding": "utf-8"})
    (b'\\xff', b'{}')
    """
    if "body_base64" in record:  # written by statepump 0.2
        return base64.b64decode(record["body_base64"])
    if record.get("body_encoding") == "base64":
        return base64.b64decode(record["body"])
    return str(record["body"]).encode("utf-8")


class DeadLetter(Protocol):
    def record(self, poisoned: Poisoned, *, reducer: str = "") -> dict[str, Any] | None:
        """Store the record of ``poisoned`` unless its key is there; return the earlier record if it was.

        The earlier record is how a restarted pump knows it met this poison
        event before (its ``recorded_at``), and says so in one short line.
        """
        ...


class DeadLetterFile:
    """Appends one JSON line per poison event to a file, once per key, fsynced, so none is lost in a crash.

    The check and the append happen under an exclusive ``flock`` of the file,
    so two processes sharing it (a sidecar and the snapshotter) record an
    event once between them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, Any]] = {}  # records seen in the file: skips re-reading it for a repeat

    def record(self, poisoned: Poisoned, *, reducer: str = "") -> dict[str, Any] | None:
        record = record_of(poisoned, reducer)
        key = record["key"]
        if key in self._known:
            return self._known[key]
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.seek(0)
            for text in f:
                if text.strip():
                    found = json.loads(text)
                    self._known.setdefault(_key(found), found)
            if key in self._known:
                return self._known[key]
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            self._known[key] = record
            return None  # closing the file releases the lock

    def read(self, since: int | None = None) -> list[dict[str, Any]]:
        """Every record written so far (after sequence ``since``), for tests and ``statepump dead-letters``."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        return [r for r in records if since is None or int(r["sequence"]) > since]


def _key(record: dict[str, Any]) -> str:
    return str(record.get("key") or key_of(record["partition"], record["sequence"], record.get("reducer", "")))


class DeadLetterBlob:
    """One blob per poison event and reducer: ``{prefix}/{partition}/{sequence:020d}-{reducer}.json``.

    Each blob holds the JSON record of :func:`record_of`. Writes are
    create-only, so a pump that meets the same poison event again after a
    restart (or a snapshotter run) keeps the first record. Like :class:`DeadLetterFile`,
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

    def name(self, poisoned: Poisoned, reducer: str = "") -> str:
        """Where the record of ``poisoned`` goes: its key, as a blob name.

        >>> from statepump.core.events import Event
        >>> e = Event("1", 7, "7", datetime(2026, 1, 1, tzinfo=UTC), None, {}, b"{bad")
        >>> DeadLetterBlob(None).name(Poisoned(e, "bad"), "config@1")
        'dead-letter/1/00000000000000000007-config@1.json'
        """
        suffix = "-" + reducer.replace("/", "_") if reducer else ""
        return f"{self.prefix}/{poisoned.event.partition}/{poisoned.event.sequence:020d}{suffix}.json"

    def record(self, poisoned: Poisoned, *, reducer: str = "") -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        name = self.name(poisoned, reducer)
        data = json.dumps(record_of(poisoned, reducer), separators=(",", ":")).encode()
        try:
            self.container.upload_blob(
                name, data, overwrite=False, content_settings=ContentSettings(content_type="application/json")
            )
        except ResourceExistsError:  # recorded before a restart: keep the first record
            earlier: dict[str, Any] = json.loads(self.container.download_blob(name).readall())
            return earlier
        return None

    def read(self, since: int | None = None) -> list[dict[str, Any]]:
        """Every record (after sequence ``since``), in partition and sequence order (for tests and tooling)."""
        names = sorted(b.name for b in self.container.list_blobs(name_starts_with=self.prefix + "/"))
        records = [json.loads(self.container.download_blob(name).readall()) for name in names]
        return [r for r in records if since is None or int(r["sequence"]) > since]

    def close(self) -> None:
        self.container.close()
