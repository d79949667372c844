"""``Publisher``: config changes from Python admin tools, checked before they are sent, on one open connection.

It is what ``statepump set``/``delete``/``merge``/``send`` do, as a library:
each change is checked as the fold would check it (syntax always; with
``socket_path``, against the sidecar's current values) and refused with
:class:`~statepump.core.writecheck.Refused` before anything is sent, unless
``force=True``; every event carries the ``statepump-author`` property; and
:meth:`Publisher.outcome` waits for the sidecar to fold an event and says
whether it was applied or rejected. The producer connection stays open
between sends, and so does a management link on which each send reads the
partition's count before and after (its sequence numbers), so a send costs
three round trips to the hub, not a connection.

:class:`SyncPublisher` is the same for threaded code, on an event loop of
its own thread.

Example::

    async with Publisher(connection_string=cs, socket_path=".statepump/statepump.sock", author="deploy") as pub:
        n = await pub.set("markup/tshirt", 0.03, expect=0.02)
        outcome, reason = await pub.outcome(n)      # ("applied", None) or ("rejected", "test failed at ...")

    with SyncPublisher(connection_string=cs) as pub:
        pub.delete("markup/jeans", force=True)
"""

from __future__ import annotations

import asyncio
import getpass
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import orjson

from statepump.core.writecheck import (
    AUTHOR_PROPERTY,
    NOTHING,
    Refused,
    body_of,
    check_syntax,
    delete_body,
    merge_body,
    set_body,
)

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.eventhub.aio import EventHubProducerClient

    from statepump.core.schema import Schema
    from statepump.eventhubs.connection import HubEndpoint
    from statepump.eventhubs.transport import ManagementLink

T = TypeVar("T")

__all__ = ["Publisher", "Refused", "SyncPublisher"]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Publisher:
    """Sends checked config changes to one partition of a hub, keeping its producer connection open.

    ``socket_path`` names a sidecar to check changes against (and to read
    outcomes from); without it, changes are checked for syntax only.
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: AsyncTokenCredential | None = None,
        eventhub: str | None = None,
        partition: str = "0",
        socket_path: str | Path | None = None,
        author: str | None = None,
        properties: Mapping[str, str] | None = None,
        schema: Schema | None = None,
    ) -> None:
        #: Checked before each send, as ``--schema`` makes the writer commands check (``Schema.load(path)``).
        self.schema = schema
        self._connection_string = connection_string
        self._namespace = fully_qualified_namespace
        self._credential = credential
        self.eventhub = eventhub
        self.partition = partition
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.properties = {**(properties or {}), AUTHOR_PROPERTY: author or _user()}
        self._endpoint: HubEndpoint | None = None
        self._producer: EventHubProducerClient | None = None
        self._management: ManagementLink | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect to the hub (done by the first send otherwise)."""
        if self._producer is not None:
            return
        from statepump.eventhubs.connection import HubEndpoint
        from statepump.eventhubs.transport import ManagementLink

        endpoint = HubEndpoint(
            connection_string=self._connection_string,
            fully_qualified_namespace=self._namespace,
            credential=self._credential,
            eventhub=self.eventhub,
        )
        producer = endpoint.producer(retry_total=3)
        await producer.__aenter__()
        # Held for the publisher's life: each send reads the partition's count on it before and after.
        management = ManagementLink(producer)
        try:
            await management.last_enqueued_sequence_number(self.partition)  # fails here, not at the first send
        except BaseException:
            await management.close()
            await producer.close()
            await endpoint.close()
            raise
        self._endpoint, self._producer, self._management = endpoint, producer, management

    async def close(self) -> None:
        producer, endpoint, management = self._producer, self._endpoint, self._management
        self._producer = self._endpoint = self._management = None
        if management is not None:
            await management.close()
        if producer is not None:
            await producer.close()
        if endpoint is not None:
            await endpoint.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def send(self, *events: bytes | Mapping[str, Any], force: bool = False) -> list[int]:
        """Send ``events`` (bodies, or operations as dicts) in order; their sequence numbers.

        Raises :class:`Refused` (nothing sent) when one would be rejected, unless ``force``.
        """
        bodies = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
        if not force:
            await self.check(bodies)
        await self.open()
        assert self._producer is not None
        assert self._endpoint is not None
        from statepump.eventhubs.send import send_on

        async with self._lock:  # one send at a time: the sequence numbers are read from the partition's counts
            return await send_on(
                self._producer,
                self._endpoint,
                bodies,
                partition=self.partition,
                properties=self.properties,
                management=self._management,
            )

    async def check(self, bodies: Sequence[bytes]) -> None:
        """Raise :class:`Refused` if the fold would reject ``bodies`` (as ``statepump send`` checks)."""
        for body in bodies:
            check_syntax(body, self.schema)
        if self.socket_path is not None:
            from statepump.writecommands import refusal

            problem = await asyncio.to_thread(refusal, self.socket_path, list(bodies), self.schema)
            if problem is not None:
                raise Refused(problem)

    async def set(
        self, path: str, value: Any, *, expect: Any = NOTHING, if_sequence: int | None = None, force: bool = False
    ) -> int:
        """Set ``path`` to ``value`` (with ``expect``: only if it still holds that value; with ``if_sequence``:
        only if it last changed at or before that event)."""
        return (await self.send(set_body(path, value, expect=expect, if_sequence=if_sequence), force=force))[0]

    async def delete(
        self, path: str, *, expect: Any = NOTHING, if_sequence: int | None = None, force: bool = False
    ) -> int:
        """Delete what ``path`` holds."""
        return (await self.send(delete_body(path, expect=expect, if_sequence=if_sequence), force=force))[0]

    async def merge(
        self,
        path: str,
        value: Mapping[str, Any],
        *,
        expect: Any = NOTHING,
        if_sequence: int | None = None,
        force: bool = False,
    ) -> int:
        """Merge the object ``value`` into what ``path`` holds."""
        return (await self.send(merge_body(path, value, expect=expect, if_sequence=if_sequence), force=force))[0]

    async def apply(self, ops: Sequence[Mapping[str, Any]], *, force: bool = False) -> int:
        """Several operations as one atomic event."""
        return (await self.send(body_of(ops), force=force))[0]

    async def outcome(self, sequence: int, timeout: float = 30.0) -> tuple[str, str | None]:
        """``("applied", None)``, ``("rejected", reason)`` or ``("poisoned", reason)`` once the sidecar folded it.

        Raises ``TimeoutError`` when it did not within ``timeout`` seconds.
        """
        if self.socket_path is None:
            raise ValueError("outcome() reads the sidecar: give the Publisher a socket_path")
        return await asyncio.to_thread(_wait_outcome, self.socket_path, sequence, timeout)


def _wait_outcome(socket_path: Path, sequence: int, timeout: float) -> tuple[str, str | None]:
    from statepump.client import Client
    from statepump.writecommands import _outcome

    with Client(socket_path, timeout=5.0) as client:
        found = _outcome(client, sequence, time.monotonic() + timeout)
    if found is None:
        raise TimeoutError(f"event {sequence} was not folded by the sidecar on {socket_path} within {timeout:g} s")
    return found


class SyncPublisher:
    """:class:`Publisher` for synchronous code: the same methods, blocking, on a loop in a thread of its own."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="statepump-publisher", daemon=True)
        self._thread.start()
        self._publisher = self._call(_make(options))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def send(self, *events: bytes | Mapping[str, Any], force: bool = False) -> list[int]:
        return self._call(self._publisher.send(*events, force=force))

    def set(
        self, path: str, value: Any, *, expect: Any = NOTHING, if_sequence: int | None = None, force: bool = False
    ) -> int:
        return self._call(self._publisher.set(path, value, expect=expect, if_sequence=if_sequence, force=force))

    def delete(self, path: str, *, expect: Any = NOTHING, if_sequence: int | None = None, force: bool = False) -> int:
        return self._call(self._publisher.delete(path, expect=expect, if_sequence=if_sequence, force=force))

    def merge(
        self,
        path: str,
        value: Mapping[str, Any],
        *,
        expect: Any = NOTHING,
        if_sequence: int | None = None,
        force: bool = False,
    ) -> int:
        return self._call(self._publisher.merge(path, value, expect=expect, if_sequence=if_sequence, force=force))

    def apply(self, ops: Sequence[Mapping[str, Any]], *, force: bool = False) -> int:
        return self._call(self._publisher.apply(ops, force=force))

    def outcome(self, sequence: int, timeout: float = 30.0) -> tuple[str, str | None]:
        return self._call(self._publisher.outcome(sequence, timeout))

    def close(self) -> None:
        if not self._loop.is_running():
            return
        try:
            self._call(self._publisher.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> Self:
        self._call(self._publisher.open())
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


async def _make(options: Mapping[str, Any]) -> Publisher:
    return Publisher(**options)  # made on the publisher's loop: its lock belongs there
