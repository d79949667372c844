"""Snapshots in an Azure Blob Storage container.

One partition's snapshots are block blobs named
``{prefix}/{eventhub}/{partition}/{sequence:020d}.snapshot``; ``list`` asks the
service for that prefix only (``name_starts_with``), so finding the latest costs
one listing of this partition's snapshots, never of the whole container.

Writes are create-only: ``upload_blob(overwrite=False)`` sends
``If-None-Match: *``, and a ``409`` becomes :class:`statepump.core.errors.SnapshotExists`.
A partly uploaded snapshot is never visible: up to the client's
``max_single_put_size`` (64 MiB by default) the SDK sends one Put Blob, which
the service applies whole or not at all; above it, the SDK stages blocks and
commits the block list at the end, still with ``If-None-Match: *``, and staged
but uncommitted blocks are not listed. The sequence number, event hub and
partition are also stored as blob metadata, with a per-write id that lets a
retried write recognise its own earlier success (a put whose reply was lost).

Transient failures (connection refused or reset, timeouts, HTTP 408/429/5xx)
are retried with exponential backoff and jitter (``tenacity``), bounded by
attempts and time; then :class:`SnapshotStoreUnavailable` names the account
URL, container and prefix, never a key or SAS token. The constructors here
build the container client with :mod:`statepump.storage.containers`, with the
SDK's own retries turned off so that the two do not multiply.

Example::

    store = BlobStore.from_connection_string(conn, "snapshots", eventhub="config", partition="0")
    async with store:
        refs = await store.list()
        data = await store.read(refs[-1])
"""

from __future__ import annotations

import logging
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob.aio import ContainerClient
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from statepump.core.errors import ConfigError, ServiceUnavailable, SnapshotExists
from statepump.storage.containers import NO_SDK_RETRIES, Credential, is_transient, open_container, scrub
from statepump.stores import SnapshotRef, parse_sequence, snapshot_name

log = logging.getLogger("statepump.stores.blob")

T = TypeVar("T")

#: Block size of the rare staged write (see ``BlobStore.write``).
FALLBACK_BLOCK_SIZE = 4 * 1024 * 1024
LEFTOVER_BLOCK_ID_LENGTHS = (9, 48)
BLOCK_ID_ALPHABET = string.ascii_letters + string.digits


class SnapshotStoreUnavailable(ServiceUnavailable):
    """A snapshot store could not be reached, even after retrying.

    The message names the store (account URL, container, prefix) and the last
    error, with no key or SAS token in it.
    """


@dataclass(frozen=True, slots=True)
class BlobRetry:
    """How long to keep retrying a transient failure.

    ``attempts`` counts the first try; the wait before retry *n* is about
    ``initial_backoff * 2**n`` seconds plus jitter, at most ``max_backoff``; no
    retry starts after ``deadline`` seconds.

    >>> BlobRetry(attempts=3).attempts
    3
    """

    attempts: int = 6
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    deadline: float = 60.0


class BlobStore:
    """A :class:`statepump.stores.SnapshotStore` over one partition's prefix in a Blob container.

    Prefer the constructors :meth:`from_connection_string` and
    :meth:`from_account_url`; given a ``ContainerClient`` directly, the store
    uses it as it is (including any retry policy of its own) and closes it.

    >>> store = BlobStore.from_connection_string(
    ...     "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;"
    ...     "BlobEndpoint=http://127.0.0.1:10000/dev;", "snaps", "hub", "0")
    >>> store.description
    'azure blob http://127.0.0.1:10000/dev container snaps prefix snapshots/hub/0/'
    """

    def __init__(
        self,
        container: ContainerClient,
        eventhub: str,
        partition: str,
        prefix: str = "snapshots",
        *,
        create_container: bool = False,
        retry: BlobRetry | None = None,
        max_concurrency: int = 2,
        owned_credential: AsyncTokenCredential | None = None,
    ) -> None:
        for setting, value in (("eventhub", eventhub), ("partition", partition)):
            if not value or "/" in value or value in (".", ".."):
                raise ConfigError(f"{setting} must be a non-empty name without '/', got {value!r}")
        self._container = container
        self.eventhub = eventhub
        self.partition = partition
        self.prefix = "/".join(p for p in prefix.strip("/").split("/") if p)
        self.create_container = create_container
        self.retry = retry or BlobRetry()
        self.max_concurrency = max_concurrency
        self._owned_credential = owned_credential
        #: Retries made so far (for metrics).
        self.retries = 0
        self.account_url = f"{container.scheme}://{container.primary_hostname}"
        self.container_name = container.container_name
        # The trailing slash keeps partition "1" from matching partition "10".
        self.list_prefix = snapshot_name(self.prefix, eventhub, partition, 0).rsplit("/", 1)[0] + "/"
        self.description = scrub(
            f"azure blob {self.account_url} container {self.container_name} prefix {self.list_prefix}"
        )

    # -- construction -------------------------------------------------------

    @classmethod
    def from_connection_string(
        cls,
        conn: str,
        container: str,
        eventhub: str,
        partition: str,
        prefix: str = "snapshots",
        *,
        create_container: bool = False,
        retry: BlobRetry | None = None,
        max_concurrency: int = 2,
        **client_options: Any,
    ) -> BlobStore:
        """A store from a storage connection string (account key or SAS).

        ``client_options`` go to ``ContainerClient`` (e.g. ``max_single_put_size``,
        ``connection_timeout``).
        """
        try:
            opened = open_container(container, connection_string=conn, retry=NO_SDK_RETRIES, **client_options)
        except ValueError as exc:
            raise ConfigError(f"invalid storage connection string: {scrub(str(exc), conn)}") from None
        return cls(
            opened.client,
            eventhub,
            partition,
            prefix,
            create_container=create_container,
            retry=retry,
            max_concurrency=max_concurrency,
        )

    @classmethod
    def from_account_url(
        cls,
        url: str,
        container: str,
        eventhub: str,
        partition: str,
        prefix: str = "snapshots",
        *,
        credential: Credential | None = None,
        create_container: bool = False,
        retry: BlobRetry | None = None,
        max_concurrency: int = 2,
        **client_options: Any,
    ) -> BlobStore:
        """A store from an account URL (``https://ACCOUNT.blob.core.windows.net``).

        A SAS token may be part of ``url``. Without either, it authenticates with
        ``azure.identity.aio.DefaultAzureCredential`` (managed identity,
        workload identity, environment, Azure CLI, ...), which the store closes.
        """
        try:
            opened = open_container(
                container, account_url=url, credential=credential, retry=NO_SDK_RETRIES, **client_options
            )
        except ValueError as exc:
            raise ConfigError(f"invalid storage account URL {scrub(url)!r}: {scrub(str(exc))}") from None
        return cls(
            opened.client,
            eventhub,
            partition,
            prefix,
            create_container=create_container,
            retry=retry,
            max_concurrency=max_concurrency,
            owned_credential=opened.owned_credential,
        )

    def __repr__(self) -> str:
        return f"BlobStore({self.description})"

    async def __aenter__(self) -> BlobStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------

    def _name(self, sequence: int) -> str:
        return snapshot_name(self.prefix, self.eventhub, self.partition, sequence)

    def _check_ref(self, ref: SnapshotRef) -> str:
        if ref.sequence < 0 or ref.name != self._name(ref.sequence):
            raise ValueError(f"{ref.name!r} is not a snapshot of {self.description}")
        return ref.name

    def _secrets(self) -> tuple[str, ...]:
        key = getattr(self._container.credential, "account_key", None)
        return (key,) if isinstance(key, str) else ()

    def _missing_container(self) -> ConfigError:
        return ConfigError(
            f"--snapshot-container: container {self.container_name!r} does not exist at {self.account_url}; "
            "check the name, or create it: --create-containers yes (create_container=True from Python; "
            "in Azure the deployment's Bicep template creates it)"
        )

    def _before_sleep(self, what: str) -> Callable[[RetryCallState], None]:
        def note(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: %s failed (%s), retry %d in %.2fs",
                self.description,
                what,
                type(exc).__name__,
                state.attempt_number,
                delay,
            )

        return note

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts) | stop_after_delay(self.retry.deadline),
            wait=wait_exponential(multiplier=self.retry.initial_backoff, max=self.retry.max_backoff)
            + wait_random(0, self.retry.initial_backoff),
            retry=retry_if_exception(is_transient),
            before_sleep=self._before_sleep(what),
        )
        try:
            return await retrying(operation)
        except RetryError as gave_up:
            last = gave_up.last_attempt
            exc = last.exception()
            cause = f"{type(exc).__name__}: {scrub(str(exc), *self._secrets())}" if exc else "no result"
            raise SnapshotStoreUnavailable(
                f"snapshot store {self.description} unavailable: {what} failed "
                f"{last.attempt_number} times over {time.monotonic() - started:.1f}s; last error {cause}"
            ) from None

    async def _ensure_container(self) -> None:
        try:
            await self._container.create_container()
            log.info("%s: created container %s", self.description, self.container_name)
        except ResourceExistsError:
            pass  # someone else made it first: just as good
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            # Least-privilege roles (Storage Blob Data Contributor on a container) may not create one.
            raise ConfigError(
                f"--create-containers: container {self.container_name!r} at {self.account_url} does not exist "
                "and this identity may not create it (403); create it (the deployment's Bicep template does), "
                "or check the name"
            ) from None

    # -- the SnapshotStore interface ----------------------------------------

    async def list(self) -> list[SnapshotRef]:
        """This partition's snapshots, lowest sequence number first (one prefix listing)."""

        async def scan() -> list[SnapshotRef]:
            refs: list[SnapshotRef] = []
            try:
                async for blob in self._container.list_blobs(name_starts_with=self.list_prefix):
                    sequence = parse_sequence(blob.name)
                    if sequence is None or blob.name != self._name(sequence):
                        continue
                    refs.append(SnapshotRef(sequence, blob.name, blob.size, blob.last_modified))
            except ResourceNotFoundError:
                if self.create_container:
                    await self._ensure_container()  # made at start, where the snapshotter will write
                    return []
                raise self._missing_container() from None
            refs.sort()
            return refs

        return await self._call("list", scan)

    async def read(self, ref: SnapshotRef) -> bytes:
        """The snapshot's bytes; ``FileNotFoundError`` if it is gone."""
        name = self._check_ref(ref)

        async def download() -> bytes:
            try:
                stream = await self._container.download_blob(name, max_concurrency=self.max_concurrency)
                return await stream.readall()
            except ResourceNotFoundError:
                raise FileNotFoundError(f"snapshot {name} is not in {self.description}") from None

        return await self._call("read", download)

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        """Store ``data`` as the snapshot at ``sequence``, create-only.

        Raises :class:`statepump.core.errors.SnapshotExists` if that blob exists.
        """
        name = self._name(sequence)
        writer = uuid.uuid4().hex
        metadata = {
            "sequence": str(sequence),
            "eventhub": self.eventhub,
            "partition": self.partition,
            "writer": writer,
        }
        blob = self._container.get_blob_client(name)

        async def committed_writer() -> str | None:
            """The writer id of the committed blob under ``name``; None if there is none."""
            try:
                properties = await blob.get_blob_properties()
            except ResourceNotFoundError:
                return None
            return str(properties.metadata.get("writer", ""))

        async def upload() -> dict[str, Any]:
            return await blob.upload_blob(
                data,
                overwrite=False,
                metadata=metadata,
                content_settings=ContentSettings(content_type="application/octet-stream"),
                max_concurrency=self.max_concurrency,
            )

        async def commit_blocks() -> dict[str, Any]:
            # Stage Block, then Put Block List with If-None-Match: *. All block
            # ids of one blob must have one length, and a killed SDK writer
            # leaves 9-byte or 48-byte ids, so try those lengths in turn.
            for id_length in LEFTOVER_BLOCK_ID_LENGTHS:
                blocks: list[BlobBlock] = []
                try:
                    for offset in range(0, len(data), FALLBACK_BLOCK_SIZE):
                        block_id = "".join(secrets.choice(BLOCK_ID_ALPHABET) for _ in range(id_length))
                        await blob.stage_block(block_id, data[offset : offset + FALLBACK_BLOCK_SIZE])
                        blocks.append(BlobBlock(block_id=block_id))
                except HttpResponseError as exc:
                    if blocks or getattr(exc, "error_code", None) != "InvalidBlobOrBlock":
                        raise
                    continue
                return await blob.commit_block_list(
                    blocks,
                    metadata=metadata,
                    content_settings=ContentSettings(content_type="application/octet-stream"),
                    match_condition=MatchConditions.IfMissing,
                )
            raise SnapshotExists(
                f"snapshot {name} in {self.description} is held by uncommitted blocks of another writer"
            )

        async def put() -> SnapshotRef:
            try:
                try:
                    result = await upload()
                except ResourceNotFoundError as exc:
                    if getattr(exc, "error_code", None) != "ContainerNotFound":
                        raise
                    if not self.create_container:
                        raise self._missing_container() from None
                    await self._ensure_container()
                    result = await upload()
                except ResourceExistsError:
                    if await committed_writer() is not None:
                        raise
                    # Nothing committed under the name, only staged blocks (a
                    # killed writer's, or one still uploading). Azurite refuses a
                    # conditional Put Blob then, while Azure does not; a block
                    # list commit is create-only on both.
                    result = await commit_blocks()
            except ResourceExistsError:
                # An earlier attempt of this same write may have succeeded with its reply lost.
                if await committed_writer() == writer:
                    return SnapshotRef(sequence, name, len(data), None)
                raise SnapshotExists(f"snapshot {name} already exists in {self.description}") from None
            return SnapshotRef(sequence, name, len(data), result.get("last_modified"))

        return await self._call("write", put)

    async def delete(self, ref: SnapshotRef) -> None:
        """Remove a snapshot; one that is already gone is not an error."""
        name = self._check_ref(ref)

        async def remove() -> None:
            try:
                await self._container.delete_blob(name, delete_snapshots="include")
            except ResourceNotFoundError:
                return

        await self._call("delete", remove)

    async def close(self) -> None:
        """Close the container client (and the credential the store created)."""
        await self._container.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def exists(self) -> bool:
        """Whether the container exists (a readiness probe; retried like the rest)."""

        async def probe() -> bool:
            return bool(await self._container.exists())

        return await self._call("exists", probe)


__all__ = ["BlobRetry", "BlobStore", "SnapshotStoreUnavailable", "is_transient", "scrub"]
