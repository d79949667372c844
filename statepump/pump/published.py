"""What readers see of a pump: the current version, whether it is ready, and the ways to wait.

Readers never take a lock. ``version`` is replaced by one reference assignment
per publish (atomic under the GIL) and a ``Version`` is immutable, so a reader
sees the state for event N or a later one, never something in between.

Two classes share that state, one per side. :class:`Published` is the
readers' side: ``version``, ``state``, ``ready``, ``not_ready_reason``,
``failure``, :meth:`~Published.subscribe` and the ``wait_*`` methods (the
:class:`~statepump.pump.Pump` is one). :class:`Publishing` is the writer's
side, handed to the executor: publish a version, say ready or not ready and
why, wake whoever waits. Neither knows where versions come from: no plan, no
source, no task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from statepump.core.errors import StatepumpError
from statepump.core.events import Version

S = TypeVar("S")
log = logging.getLogger("statepump.pump")

Subscriber = Callable[[Version[Any], Version[Any]], None]


class PumpFailed(StatepumpError):
    """The pump stopped for good (poison event under ``stop``, wrong hub, source gave up)."""


class _Waiters:
    """Read-your-writes waiters, ordered by the sequence number they wait for.

    A heap makes a publish cost O(k log n) for the k waiters it releases, so
    thousands of waiting requests cost nothing until their number arrives.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[Version[Any]], None]]] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def add(self, sequence: int, release: Callable[[Version[Any]], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, (sequence, next(self._ids), release))

    def release_through(self, version: Version[Any]) -> None:
        due = []
        with self._lock:
            while self._heap and self._heap[0][0] <= version.sequence:
                due.append(heapq.heappop(self._heap)[2])
        for release in due:
            release(version)

    def __len__(self) -> int:
        return len(self._heap)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True when called from ``loop`` itself (a publish on the waiter's own loop settles it directly)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Published(Generic[S]):
    """The readers' side: the current version, readiness, subscribers and waiters."""

    def __init__(self, version: Version[S]) -> None:
        #: The current version. Replaced, never mutated: read it once and use that object.
        self.version: Version[S] = version
        self._ready = False
        self._phase = "starting"
        self._problem: str | None = None
        self._failure: BaseException | None = None
        self._ended = False  # the executor's task is done: no version will follow
        self._subscribers: list[Subscriber] = []
        self._on_change: list[Callable[[], None]] = []
        self._waiters = _Waiters()

    @property
    def state(self) -> S:
        """The current state (``self.version.state``)."""
        return self.version.state

    @property
    def ready(self) -> bool:
        """True once caught up to the hub's tail as seen at start, until a gap or poison event stops the pump."""
        return self._ready

    @property
    def not_ready_reason(self) -> str | None:
        if self._ready:
            return None
        if self._problem:
            return self._problem
        return f"{self._phase} (at sequence {self.version.sequence})"

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the pump for good, if any."""
        return self._failure

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` after each publish, on the pump's thread; returns an unsubscribe function.

        Callbacks must be quick and must not block: they run between batches.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def readiness_change(self) -> asyncio.Future[None]:
        """A future, on the running loop, done at the next change of readiness, phase or failure.

        It is registered when called: take it, then read :attr:`ready`, then
        await it, and no change falls between the read and the wait.
        """
        loop = asyncio.get_running_loop()
        changed: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            def settle() -> None:
                if not changed.done():
                    changed.set_result(None)

            loop.call_soon_threadsafe(settle)

        self._on_change.append(wake)
        return changed

    async def wait_for(self, sequence: int, timeout: float | None = None) -> Version[S]:
        """Wait until the event ``sequence`` is applied; return that (or a later) version.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        current = self.version
        if current.sequence >= sequence:
            return current
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Version[S]] = loop.create_future()

        def release(version: Version[Any]) -> None:
            def settle() -> None:
                if not future.done():
                    future.set_result(version)

            if _on_loop(loop):
                settle()
            else:
                loop.call_soon_threadsafe(settle)

        self._waiters.add(sequence, release)
        # The publish may have happened between the check above and add().
        if self.version.sequence >= sequence:
            return self.version
        async with asyncio.timeout(timeout):
            return await future

    def wait_for_sync(self, sequence: int, timeout: float | None = None) -> Version[S]:
        """:meth:`wait_for` for threads that are not running an event loop."""
        current = self.version
        if current.sequence >= sequence:
            return current
        future: concurrent.futures.Future[Version[S]] = concurrent.futures.Future()

        def release(version: Version[Any]) -> None:
            if not future.done():
                future.set_result(version)

        self._waiters.add(sequence, release)
        if self.version.sequence >= sequence:
            return self.version
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"event {sequence} was not applied within {timeout} s") from None

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until :attr:`ready`; raises :class:`PumpFailed` if the pump stopped for good first."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not self._ready:
                if self._failure is not None:
                    raise PumpFailed(str(self._failure)) from self._failure
                if self._ended:
                    raise PumpFailed(self.not_ready_reason or "the pump stopped")
                changed: asyncio.Future[None] = loop.create_future()

                def wake(changed: asyncio.Future[None] = changed) -> None:
                    def settle() -> None:
                        if not changed.done():
                            changed.set_result(None)

                    loop.call_soon_threadsafe(settle)

                self._on_change.append(wake)
                if self._ready or self._failure is not None or self._ended:
                    continue  # changed between the checks and the registration
                await changed


class Publishing(Generic[S]):
    """The writer's side of a :class:`Published`: all the executor may do to what readers see.

    Every change of readiness wakes :meth:`Published.wait_ready`; a waiter
    that is woken and finds the pump still not ready waits again.
    """

    def __init__(self, published: Published[S]) -> None:
        self._published = published

    @property
    def version(self) -> Version[S]:
        """The version readers see now (the one the next fold starts from)."""
        return self._published.version

    @property
    def ready(self) -> bool:
        return self._published._ready

    @property
    def phase(self) -> str:
        return self._published._phase

    def publish(self, new: Version[S]) -> None:
        """Make ``new`` the current version, release the waiters it satisfies, call the subscribers."""
        published = self._published
        old = published.version
        published.version = new  # the one reference swap readers rely on
        published._waiters.release_through(new)
        for callback in list(published._subscribers):
            try:
                callback(old, new)
            except Exception:
                log.exception("a subscriber raised; it stays subscribed")

    def set_phase(self, phase: str, *, clear_problem: bool = False) -> None:
        """Say what the pump is doing (shown by ``not_ready_reason`` unless a problem is set); readiness stays."""
        self._published._phase = phase
        if clear_problem:
            self._published._problem = None

    def mark_ready(self) -> None:
        self._published._ready = True
        self._published._phase = "live"
        self.wake()

    def mark_not_ready(self, phase: str, problem: str) -> None:
        """Not ready, and why (``problem`` is what ``not_ready_reason`` says); the last version stays readable."""
        self._published._ready = False
        self._published._phase = phase
        self._published._problem = problem
        self.wake()

    def mark_failed(self, exc: BaseException) -> None:
        """Stopped for good by ``exc``: :meth:`Published.wait_ready` raises :class:`PumpFailed` from now on."""
        self._published._failure = exc
        self.mark_not_ready("failed", f"{type(exc).__name__}: {exc}")

    def mark_ended(self) -> None:
        """No version will follow (the executor's task is done, however it ended)."""
        self._published._ended = True
        self.wake()

    def wake(self) -> None:
        """Wake everything waiting in :meth:`Published.wait_ready` (it re-checks and may wait again)."""
        published = self._published
        callbacks, published._on_change = published._on_change, []
        for wake in callbacks:
            wake()
