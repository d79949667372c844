"""Where the hub is: connection strings, keeping secrets out of text, and the SDK's clients.

* :func:`parse_connection_string` checks a connection string and never puts
  its key in an error; :func:`redact` scrubs keys and SAS signatures from any
  text that may reach a log line.
* :class:`HubEndpoint` builds the SDK's async clients from a connection
  string, or from a fully qualified namespace and an Azure credential
  (``DefaultAzureCredential`` when none is given: managed identity in
  production).

Every client is built with the SDK's own retries off (``retry_total=0``):
retrying is done by the callers, where it can be counted, logged and bounded.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from statepump.core.errors import ConfigError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("statepump.eventhubs")


_SECRET_PATTERNS = (
    re.compile(r"(?i)(SharedAccessKey\s*=\s*)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature\s*=\s*)[^;'\"]+"),
    re.compile(r"(?i)(sig=)[^&\s;'\"]+"),
    re.compile(r"(?i)(AccountKey\s*=\s*)[^;\s'\"]+"),
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with connection-string keys, SAS signatures and the given ``secrets`` replaced by ``***``.

    >>> redact("Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=abc123=;EntityPath=h")
    'Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=***;EntityPath=h'
    >>> redact("failed with token xyz", "xyz")
    'failed with token ***'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """The parts of an Event Hubs connection string; the key stays out of ``repr``.

    >>> cs = parse_connection_string("Endpoint=sb://ns.servicebus.windows.net/;"
    ...     "SharedAccessKeyName=listen;SharedAccessKey=s3cret;EntityPath=orders")
    >>> cs.host, cs.eventhub, cs.emulator
    ('ns.servicebus.windows.net', 'orders', False)
    >>> "s3cret" in repr(cs)
    False
    """

    host: str
    port: int | None
    eventhub: str | None
    key_name: str | None
    emulator: bool
    secret: str = field(repr=False)


def parse_connection_string(text: str) -> ConnectionString:
    """Check and split a connection string; a :class:`ConfigError` names the missing part, never the key.

    >>> parse_connection_string("Endpoint=sb://h/;SharedAccessKey=x")
    Traceback (most recent call last):
    ...
    statepump.core.errors.ConfigError: --connection-string: SharedAccessKey needs SharedAccessKeyName
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--connection-string: empty")
    parts: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            # Only the name: the item may be (part of) a key pasted without its name.
            raise ConfigError("--connection-string: every part must be Name=Value (one part has no '=')")
        parts[name.strip().lower()] = value.strip()
    endpoint = parts.get("endpoint")
    if not endpoint:
        raise ConfigError("--connection-string: Endpoint=sb://<namespace>/ is missing")
    url = urlsplit(endpoint)
    if url.scheme.lower() not in ("sb", "amqps", "amqp") or not url.hostname:
        raise ConfigError("--connection-string: Endpoint must look like sb://<namespace host>/")
    try:
        port = url.port
    except ValueError:
        raise ConfigError("--connection-string: Endpoint has an invalid port") from None
    key_name = parts.get("sharedaccesskeyname")
    key = parts.get("sharedaccesskey")
    sas = parts.get("sharedaccesssignature")
    if sas is None and key is None:
        raise ConfigError(
            "--connection-string: SharedAccessKeyName/SharedAccessKey or SharedAccessSignature is missing"
        )
    if key is not None and not key_name:
        raise ConfigError("--connection-string: SharedAccessKey needs SharedAccessKeyName")
    if key is not None and not key:
        raise ConfigError("--connection-string: SharedAccessKey is empty")
    emulator = parts.get("usedevelopmentemulator", "").lower() == "true"
    return ConnectionString(
        host=url.hostname,
        port=port,
        eventhub=parts.get("entitypath") or None,
        key_name=key_name,
        emulator=emulator,
        secret=key if key is not None else (sas or ""),
    )


class HubEndpoint:
    """One event hub and how to authenticate to it; builds the SDK's async clients.

    Give ``connection_string`` (its ``EntityPath`` or ``eventhub`` names the
    hub), or ``fully_qualified_namespace`` and ``eventhub`` with an optional
    ``credential`` (default: ``azure.identity.aio.DefaultAzureCredential``,
    created on first use and closed by :meth:`close`).

    >>> hub = HubEndpoint(connection_string="Endpoint=sb://ns.servicebus.windows.net/;"
    ...     "SharedAccessKeyName=k;SharedAccessKey=v", eventhub="orders")
    >>> hub.describe()
    'ns.servicebus.windows.net/orders'
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: AsyncTokenCredential | None = None,
        eventhub: str | None = None,
    ) -> None:
        if connection_string and fully_qualified_namespace:
            raise ConfigError("give connection_string or namespace (with a credential), not both")
        self._connection_string = connection_string
        self._credential = credential
        self._owns_credential = False
        if connection_string:
            parsed = parse_connection_string(connection_string)
            if parsed.eventhub and eventhub and parsed.eventhub != eventhub:
                raise ConfigError(
                    f"eventhub: {eventhub!r} differs from the connection string's EntityPath {parsed.eventhub!r}"
                )
            name = eventhub or parsed.eventhub
            self.host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
            self._secret: str | None = parsed.secret
        elif fully_qualified_namespace:
            namespace = fully_qualified_namespace.strip()
            host = urlsplit(namespace).hostname if "://" in namespace else namespace.rstrip("/")
            if not host or "/" in host or ";" in host:
                raise ConfigError("namespace: expected a fully qualified host name such as ns.servicebus.windows.net")
            self.host = host
            name = eventhub
            self._secret = None
        else:
            raise ConfigError("no event hub configured: give connection_string, or namespace with eventhub")
        if not name:
            raise ConfigError("eventhub: not given, and the connection string has no EntityPath")
        self.eventhub: str = name

    def describe(self) -> str:
        """``host/hub``, safe to log."""
        return f"{self.host}/{self.eventhub}"

    def redact(self, text: str) -> str:
        """:func:`redact` with this endpoint's own key as well."""
        return redact(text, self._secret)

    def _token_credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            self._owns_credential = True
        return self._credential

    def consumer(self, consumer_group: str = "$Default", **kwargs: Any) -> EventHubConsumerClient:
        """A new async consumer client (SDK retries off unless ``retry_total`` is given)."""
        kwargs.setdefault("retry_total", 0)
        if self._connection_string:
            return EventHubConsumerClient.from_connection_string(
                self._connection_string, consumer_group=consumer_group, eventhub_name=self.eventhub, **kwargs
            )
        return EventHubConsumerClient(self.host, self.eventhub, consumer_group, self._token_credential(), **kwargs)

    def producer(self, **kwargs: Any) -> EventHubProducerClient:
        """A new async producer client; its links open without the SDK's pauses (``transport.quick_open``)."""
        from statepump.eventhubs.transport import quick_open

        if "connection_verify" not in kwargs:
            kwargs.setdefault("ssl_context", _verifying_context())
        if self._connection_string:
            return quick_open(
                EventHubProducerClient.from_connection_string(
                    self._connection_string, eventhub_name=self.eventhub, **kwargs
                )
            )
        return quick_open(EventHubProducerClient(self.host, self.eventhub, self._token_credential(), **kwargs))

    async def close(self) -> None:
        """Close the credential if this endpoint created it."""
        if self._owns_credential and self._credential is not None:
            close = getattr(self._credential, "close", None)
            if close is not None:
                await close()
            self._credential = None
            self._owns_credential = False


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """The TLS context the SDK builds for every connection it opens (certifi's CA bundle), built once.

    Loading the bundle takes about 30 ms, and a send opens three or four
    connections (each link has its own); the SDK takes a context made once.
    """
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
