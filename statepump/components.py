"""Building the pump's parts from :class:`~statepump.settings.Settings`.

``statepump run`` and the ``snapshotter`` assemble the same sources, stores
and pump here, so there is one place that knows which setting selects which
adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statepump.core.events import Version
from statepump.pump import Pump
from statepump.settings import Settings
from statepump.sources import EventSource
from statepump.stores import SnapshotStore
from statepump.stores.deadletters import DeadLetter, DeadLetterBlob, DeadLetterFile


def make_store(settings: Settings) -> SnapshotStore:
    """The snapshot store the settings name: a Blob container or a directory."""
    eventhub, partition = settings.resolved_eventhub(), settings.partition
    if settings.snapshot_container is not None:
        from statepump.stores.blob import BlobRetry, BlobStore

        # --retry-seconds is the budget for the store too: time, not a count of attempts, bounds it.
        retry = BlobRetry(attempts=1_000_000, deadline=settings.retry_seconds)
        if settings.storage_connection_string is not None:
            return BlobStore.from_connection_string(
                settings.storage_connection_string.get_secret_value(),
                settings.snapshot_container,
                eventhub,
                partition,
                settings.snapshot_prefix,
                retry=retry,
                create_container=settings.creates_containers(),
            )
        assert settings.storage_account_url is not None  # the settings validator guarantees one of them
        return BlobStore.from_account_url(
            settings.storage_account_url,
            settings.snapshot_container,
            eventhub,
            partition,
            settings.snapshot_prefix,
            retry=retry,
            create_container=settings.creates_containers(),
        )
    from statepump.stores.directory import DirectoryStore

    directory = settings.snapshot_directory
    assert directory is not None
    return DirectoryStore(directory, eventhub, partition, settings.snapshot_prefix)


def make_capture(settings: Settings, time_hint: Any = None) -> EventSource | None:
    """The Capture source, if Capture is configured."""
    if settings.capture_dir is None and settings.capture_container is None:
        return None
    from statepump.sources.capture import CaptureSource

    common: dict[str, Any] = {
        "namespace": settings.resolved_capture_namespace(),
        "eventhub": settings.resolved_eventhub(),
        "partition": settings.partition,
        "name_format": settings.capture_name_format,
        "time_hint": time_hint,
    }
    if settings.capture_dir is not None:
        return CaptureSource.from_directory(settings.capture_dir, **common)
    assert settings.capture_container is not None
    common["retry_seconds"] = settings.retry_seconds
    if settings.storage_connection_string is not None:
        return CaptureSource.from_connection_string(
            settings.storage_connection_string.get_secret_value(), settings.capture_container, **common
        )
    assert settings.storage_account_url is not None
    return CaptureSource.from_account_url(settings.storage_account_url, settings.capture_container, **common)


def make_hub(settings: Settings) -> EventSource:
    """The Event Hubs source for the configured partition."""
    from statepump.sources.eventhub import EventHubSource

    return EventHubSource(**hub_arguments(settings), node_id=settings.node_id)


def hub_arguments(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments shared by the source and ``send``."""
    if settings.connection_string is not None:
        return {
            "connection_string": settings.connection_string.get_secret_value(),
            "eventhub": settings.resolved_eventhub(),
            "partition": settings.partition,
            "consumer_group": settings.consumer_group,
            "retry": _retry(settings),
        }
    from azure.identity.aio import DefaultAzureCredential

    return {
        "fully_qualified_namespace": settings.namespace,
        "credential": DefaultAzureCredential(),
        "eventhub": settings.resolved_eventhub(),
        "partition": settings.partition,
        "consumer_group": settings.consumer_group,
        "retry": _retry(settings),
    }


def _retry(settings: Settings) -> Any:
    from statepump.eventhubs.failures import Backoff

    return Backoff(max_seconds=settings.retry_seconds)


def make_pump(
    settings: Settings,
    *,
    source: EventSource | None = None,
    store: SnapshotStore | None = None,
    until: int | None = None,
    **overrides: Any,
) -> Pump[Any]:
    """A pump wired as the settings say (``source``/``store`` may be given, e.g. in tests)."""
    dead_letter: DeadLetter | None = None
    if "dead_letter" in overrides:  # given (time travel replays without recording poison events again)
        dead_letter = overrides.pop("dead_letter")
    elif settings.poison_policy == "skip":
        dead_letter = make_dead_letter(settings)
    from statepump.core.history import History

    overrides.setdefault("history", History(settings.history, settings.history_bytes))
    if settings.upstream is not None:
        source = source if source is not None else make_relay_source(settings)
        store = store if store is not None else make_relay_store(settings)
    return Pump(
        source if source is not None else make_hub(settings),
        reducer=settings.make_reducer(),
        store=store if store is not None else make_store(settings),
        capture=make_capture(settings),
        eventhub=settings.resolved_eventhub(),
        partition=settings.partition,
        poison_policy=settings.poison_policy,
        dead_letter=dead_letter,
        allow_gap=settings.allow_gap,
        hmac_key=settings.hmac_key(),
        gc_interval=settings.gc_interval,
        catchup_publish_interval=settings.catchup_publish_interval,
        until=until,
        **overrides,
    )


def make_relay_source(settings: Settings) -> EventSource:
    """``--upstream``: the feed of the upstream statepumps, in order, with failover."""
    from statepump.sources.relay import FallbackSource, RelaySource

    relay = RelaySource(
        settings.upstreams,
        partition=settings.partition,
        token=settings.relay_token(),
        ca_file=settings.upstream_ca,
        retry_seconds=settings.retry_seconds,
    )
    if settings.upstream_fallback == "hub":
        return FallbackSource(relay, lambda: make_hub(settings))
    return relay


def make_relay_store(settings: Settings) -> SnapshotStore:
    """``--upstream``: the upstream's current snapshot, or this pump's own store's when that is newer."""
    from statepump.stores.relaystore import NewestOf, RelayStore

    relay = RelayStore(
        settings.upstreams,
        settings.resolved_eventhub(),
        settings.partition,
        token=settings.relay_token(),
        ca_file=settings.upstream_ca,
    )
    if settings.snapshot_dir is None and settings.snapshot_container is None and settings.upstream_fallback != "hub":
        return relay
    # Its own store too: newer than the relay's, or (falling back to the hub) all it has when no relay answers.
    return NewestOf(relay, make_store(settings))


async def upstream_eventhub(settings: Settings) -> Settings:
    """Relay mode without ``--eventhub``: the upstream's hub name, so its snapshots are this pump's to load."""
    if settings.upstream is None or settings.eventhub is not None:
        return settings
    from statepump.sources.relay import RelaySource

    source = RelaySource(settings.upstreams, token=settings.relay_token(), ca_file=settings.upstream_ca)
    for upstream in source.upstreams:
        try:
            answer = await source.client.get(upstream, b"/v1/status", timeout=10.0)
        except Exception:  # noqa: S112 - the next upstream may answer; the pump reports an unreachable one
            continue
        if answer.status == 200:
            import json

            return settings.model_copy(update={"eventhub": str(json.loads(answer.body)["eventhub"])})
    return settings


def make_worker_pump(
    upstream: str | Path = ".statepump/statepump.sock",
    *,
    reducer: str = "config",
    **settings: Any,
) -> Pump[Any]:
    """A pump for one pre-fork worker (gunicorn's ``post_fork``), fed by the node's sidecar over its socket.

    Every read is then an attribute read of one consistent version
    (``pump.version``), with no hub reader and no catch-up per worker: the
    worker loads the sidecar's snapshot and follows its replication feed.
    Call :meth:`~statepump.pump.Pump.start_in_thread` after the fork, never
    before (a thread does not survive ``fork``)::

        def post_fork(server, worker):
            worker.pump = make_worker_pump("/run/statepump/statepump.sock")
            worker.pump.start_in_thread()
            worker.pump.wait_for_sync(0, timeout=30)

    >>> make_worker_pump("/tmp/none.sock", eventhub="config").source.kind
    'relay'
    """
    from statepump.settings import load

    flags: dict[str, Any] = {"upstream": str(upstream), "reducer": reducer, **settings}
    if "eventhub" not in settings:
        from statepump.client import Client

        try:
            with Client(upstream, timeout=10.0) as client:
                flags["eventhub"] = client.status()["eventhub"]
        except Exception:  # noqa: S110 - no sidecar yet: the pump retries it, and says so
            pass
    return make_pump(load(flags, environ={}))


def make_dead_letter(settings: Settings) -> DeadLetter:
    """Where skipped poison events are recorded: a Blob container, or a JSON-lines file."""
    container = settings.dead_letter_container
    if container is None:
        return DeadLetterFile(settings.dead_letter or settings.data_dir / "dead-letter.jsonl")
    if settings.storage_connection_string is not None:
        return DeadLetterBlob.from_connection_string(settings.storage_connection_string.get_secret_value(), container)
    assert settings.storage_account_url is not None  # the settings validator guarantees one of them
    return DeadLetterBlob.from_account_url(settings.storage_account_url, container)


def describe_version(version: Version[Any]) -> str:
    """One line about a version, for logs and the CLI."""
    when = version.enqueued_time.isoformat() if version.enqueued_time else "-"
    return f"sequence {version.sequence} (enqueued {when})"


def embedded_file(settings: Settings) -> Path:
    """Where ``statepump run`` records its embedded hub, for ``statepump send``."""
    return settings.data_dir / "embedded.json"
