"""Blob container clients, built in one place.

Snapshots (:mod:`statepump.stores.blob`), Capture files
(:mod:`statepump.sources.capture`) and dead letters
(:mod:`statepump.stores.deadletters`) all reach a Blob container from the same
settings: a storage connection string, or an account URL and a credential.
This module is the one place that turns those into an
``azure.storage.blob`` ``ContainerClient`` (:func:`open_container`, async;
:func:`open_sync_container` for the dead letters, which write from the pump's
thread), so that the credential used when none is given, the retries the SDK
makes and the rules every caller shares are written once: which errors are
worth retrying (:func:`is_transient`) and how keys and SAS signatures are kept
out of text (:func:`scrub`).

Each caller keeps its own retry arrangement, named by an :class:`SdkRetry`:

* the snapshot store retries whole operations itself
  (:class:`~statepump.stores.blob.BlobRetry`), so the SDK's retries are off
  (:data:`NO_SDK_RETRIES`) and the two do not multiply;
* Capture leaves retrying to the SDK, with back-offs that fit
  ``--retry-seconds`` (:meth:`SdkRetry.within`);
* dead letters take the SDK's own exponential back-off, five retries
  (:data:`DEAD_LETTER_RETRY`).

Errors of the settings themselves (a malformed connection string or URL) are
the SDK's ``ValueError``; the caller decides how to report them.

Example (no request is made until the client is used)::

    >>> opened = open_container(
    ...     "snapshots",
    ...     connection_string="DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;"
    ...     "BlobEndpoint=http://127.0.0.1:10000/dev;",
    ...     retry=SdkRetry.within(60),
    ... )
    >>> opened.client.url, opened.owned_credential
    ('http://127.0.0.1:10000/dev/snapshots', None)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient as SyncContainerClient
from azure.storage.blob import ExponentialRetry as SyncExponentialRetry
from azure.storage.blob.aio import ContainerClient, ExponentialRetry

from statepump.core.errors import ServiceUnavailable

#: What an async container client accepts as a credential.
Credential = AsyncTokenCredential | AzureNamedKeyCredential | AzureSasCredential | str
#: What the sync container client accepts as a credential.
SyncCredential = TokenCredential | AzureNamedKeyCredential | AzureSasCredential | str

C = TypeVar("C", ContainerClient, SyncContainerClient)


@dataclass(frozen=True, slots=True)
class SdkRetry:
    """The retries the Storage SDK makes itself, inside one call of a client.

    ``retries`` counts the retries after the first try. With ``budget``
    (seconds), the back-offs are 1, 3, 5, 9, 17, ... s (``1 + 2**n``, plus up
    to 1 s of jitter), as many as fit in the budget: the SDK's default waits
    15 s before its first retry and minutes in all, whatever the operator set.
    Without a budget, the SDK's own exponential back-off makes ``retries``.

    >>> SdkRetry.within(60)
    SdkRetry(retries=6, budget=60)
    """

    retries: int
    budget: float | None = None

    @classmethod
    def within(cls, seconds: float) -> SdkRetry:
        """As many retries as back-offs of ``1 + 2**n`` s fit in ``seconds`` (at least one)."""
        retries, total = 0, 0.0
        while total < seconds:
            total += 1 + (2**retries if retries else 0)
            retries += 1
        return cls(max(1, retries), seconds)

    def options(self, *, sync: bool = False) -> dict[str, Any]:
        """The client keyword arguments that set this up.

        >>> NO_SDK_RETRIES.options()
        {'retry_total': 0}
        >>> SdkRetry.within(60).options()["retry_policy"].total_retries
        6
        """
        if self.budget is None:
            return {"retry_total": self.retries}
        policy = SyncExponentialRetry if sync else ExponentialRetry
        return {
            "retry_policy": policy(initial_backoff=1, increment_base=2, retry_total=self.retries, random_jitter_range=1)
        }


#: For a caller that retries whole operations itself.
NO_SDK_RETRIES = SdkRetry(0)
#: The dead letters': the SDK's exponential back-off, five retries.
DEAD_LETTER_RETRY = SdkRetry(5)


@dataclass(frozen=True, slots=True)
class Opened(Generic[C]):
    """A container client, and the credential made for it (``None`` if the caller gave one or none was needed).

    Whoever owns the client closes ``owned_credential`` with it.
    """

    client: C
    owned_credential: Any = None


def _async_identity() -> Any:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def _sync_identity() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class ContainerFactory(Generic[C]):
    """Builds clients of one kind: :data:`ASYNC` (``azure.storage.blob.aio``) or :data:`SYNC`.

    ``identity`` makes the ``DefaultAzureCredential`` of that kind, imported
    only when one is needed.
    """

    client_type: type[C]

    def __init__(self, client_type: type[C], *, sync: bool, identity: Callable[[], Any]) -> None:
        self.client_type = client_type
        self.sync = sync
        self.identity = identity

    def open(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        retry: SdkRetry,
        identity_with_sas: bool = False,
        **options: Any,
    ) -> Opened[C]:
        """A client of ``container``, from a connection string or an account URL.

        Exactly one of ``connection_string`` (account key or SAS) and
        ``account_url`` (``https://ACCOUNT.blob.core.windows.net``, maybe with
        a SAS token) is given; ``credential`` goes with the URL (a
        :data:`Credential` for :data:`ASYNC`, a :data:`SyncCredential` for
        :data:`SYNC`). With a URL and no ``credential`` it signs in with
        ``azure.identity``'s ``DefaultAzureCredential`` (managed identity,
        workload identity, environment, Azure CLI, ...), returned as
        ``owned_credential``; unless the URL carries a SAS token and
        ``identity_with_sas`` is false. ``options`` go to ``ContainerClient``
        after the retry's, so they may override it.
        """
        options = {**retry.options(sync=self.sync), **options}
        if connection_string is not None:
            if account_url is not None or credential is not None:
                raise TypeError("a connection string carries its own account and credential")
            client = self.client_type.from_connection_string(connection_string, container_name=container, **options)
            return Opened(client)
        if account_url is None:
            raise TypeError("give a connection string or an account URL")
        owned = None
        if credential is None and (identity_with_sas or "sig=" not in urlsplit(account_url).query):
            credential = owned = self.identity()
        client = self.client_type(account_url, container_name=container, credential=credential, **options)
        return Opened(client, owned)


#: Async clients (``azure.storage.blob.aio``, ``azure.identity.aio``).
ASYNC = ContainerFactory(ContainerClient, sync=False, identity=_async_identity)
#: Sync clients (``azure.storage.blob``, ``azure.identity``), for code that runs on a thread of its own.
SYNC = ContainerFactory(SyncContainerClient, sync=True, identity=_sync_identity)

#: An async client: ``open_container(container, connection_string=... | account_url=..., retry=...)``.
open_container = ASYNC.open
#: A sync client, the same way.
open_sync_container = SYNC.open


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed.

    An error that already reports a spent retry budget
    (:class:`~statepump.core.errors.ServiceUnavailable`) is not.

    >>> is_transient(ServiceRequestError("connection refused"))
    True
    >>> from azure.core.exceptions import ResourceNotFoundError
    >>> is_transient(ResourceNotFoundError("gone"))
    False
    """
    if isinstance(exc, ServiceRequestError | ServiceResponseError | IncompleteReadError | TimeoutError):
        return True
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        return status is not None and (status >= 500 or status in (408, 429))
    # Raw transport errors can surface while a download's body is streamed.
    return isinstance(exc, ConnectionError) and not isinstance(exc, ServiceUnavailable)


_SECRET_PATTERNS = (
    re.compile(r"(?i)(sig=)[^&\s'\"]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
)


def scrub(text: str, *secrets: str) -> str:
    """``text`` with SAS signatures, account keys and the given secrets masked.

    >>> scrub("https://a.blob.core.windows.net/c?sv=1&sig=abc%3D")
    'https://a.blob.core.windows.net/c?sv=1&sig=***'
    """
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


__all__ = [
    "ASYNC",
    "DEAD_LETTER_RETRY",
    "NO_SDK_RETRIES",
    "SYNC",
    "ContainerFactory",
    "Credential",
    "Opened",
    "SdkRetry",
    "SyncCredential",
    "is_transient",
    "open_container",
    "open_sync_container",
    "scrub",
]
