"""What went wrong talking to the hub, and whether to try again.

:class:`Backoff` is the retry policy (pure); :func:`classify` sorts SDK errors
into "retry" and "report", and :func:`rejection` turns a reported one into a
:class:`HubError` whose message names host and hub, never a key.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass

from azure.eventhub.exceptions import AuthenticationError

from statepump.core.errors import ConfigError, ServiceUnavailable, StatepumpError
from statepump.eventhubs.connection import HubEndpoint


class HubError(StatepumpError):
    """Event Hubs refused or failed an operation; the message names host and hub, never a key."""


class HubUnreachable(HubError, ServiceUnavailable):
    """The hub could not be reached within the retry budget."""


class PartitionStolen(HubError):
    """Another reader with a higher owner level (epoch) took the partition (``amqp:link:stolen``)."""


class HubRejected(HubError):
    """The hub answered, but no: unknown hub or partition, a position past the end, bad credentials."""


class EventTooLarge(HubError, ValueError):
    """An event does not fit in one batch (the service's 1 MB limit); nothing was sent."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How to retry a lost connection: exponential delays with jitter, within a budget.

    The delay before retry ``n`` (1, 2, ...) is ``initial * 2**(n-1)`` capped
    at ``maximum``, minus up to ``jitter`` of itself at random (so readers
    that lost the same hub do not come back in step). The budget is spent
    when ``max_attempts`` retries failed in a row or ``max_seconds`` passed
    since the first failure of the row; ``None`` means no limit of that kind.

    >>> policy = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    >>> [policy.delay(n) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> Backoff(max_attempts=3).exhausted(attempts=3, elapsed=0.0)
    True
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = None
    max_seconds: float | None = 300.0
    #: A connection that stayed up this long (or delivered an event) ends a row of failures.
    healthy_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ConfigError(f"retry: need 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"retry: jitter is a fraction between 0 and 1, got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ConfigError(f"retry: max_attempts must be >= 0, got {self.max_attempts}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise ConfigError(f"retry: max_seconds must be >= 0, got {self.max_seconds}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (from 1)."""
        base: float = min(self.maximum, self.initial * 2.0 ** min(max(attempt - 1, 0), 62))
        if self.jitter:
            base -= base * self.jitter * (rng or _RNG).random()
        return base

    def exhausted(self, *, attempts: int, elapsed: float) -> bool:
        """Whether no retry may follow ``attempts`` failures in a row spanning ``elapsed`` seconds."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_seconds is not None and elapsed >= self.max_seconds

    def describe(self) -> str:
        limits = []
        if self.max_attempts is not None:
            limits.append(f"{self.max_attempts} attempts")
        if self.max_seconds is not None:
            limits.append(f"{self.max_seconds:g} s")
        return " or ".join(limits) or "no limit"


_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


class Failure(enum.Enum):
    """What an SDK error means for a reader."""

    TRANSIENT = "transient"  # connection refused or lost, timeout, idle close: retry
    STOLEN = "stolen"  # a higher owner level took the partition: report
    NOT_FOUND = "not found"  # unknown hub, partition or consumer group: report
    POSITION_AHEAD = "position ahead"  # a start past the partition's last event: report
    AUTH = "unauthorized"  # bad key or token, missing role: report
    #: The consumer group already has its 5 receivers on the partition: another group of the pool may not.
    RECEIVER_QUOTA = "receiver quota"


def classify(exc: BaseException) -> Failure:
    """Sort an error from the SDK.

    >>> from azure.eventhub.exceptions import EventHubError
    >>> classify(ConnectionResetError())
    <Failure.TRANSIENT: 'transient'>
    >>> classify(EventHubError("New receiver with higher epoch... Error condition: amqp:link:stolen"))
    <Failure.STOLEN: 'stolen'>
    >>> classify(EventHubError(QUOTA_TEXT + " which is 5. List of connected receivers - nil."))
    <Failure.RECEIVER_QUOTA: 'receiver quota'>
    """
    if isinstance(exc, AuthenticationError):
        return Failure.AUTH
    text = str(exc)
    condition = getattr(exc, "error", None) or ""
    if "link:stolen" in condition or "amqp:link:stolen" in text:
        return Failure.STOLEN
    if QUOTA_TEXT in text:
        # The SDK raises it as ConnectionLostError (amqp:resource-limit-exceeded), which it does not
        # retry; retrying the same group would only be refused again while its five readers stay.
        return Failure.RECEIVER_QUOTA
    if "argument-out-of-range" in condition or "argument-out-of-range" in text:
        return Failure.POSITION_AHEAD
    if "unauthorized-access" in text or "Status code: 401" in text:
        return Failure.AUTH
    if isinstance(exc, ValueError) and "partition id" in text:
        return Failure.NOT_FOUND  # the SDK's own check against the hub's partition ids
    if "NotFound" in text or "amqp:not-found" in text or "Status code: 404" in text:
        return Failure.NOT_FOUND
    return Failure.TRANSIENT


#: The service's words for a sixth receiver on a partition and consumer group (``amqp:resource-limit-exceeded``).
QUOTA_TEXT = "Exceeded the maximum number of allowed receivers per partition in a consumer group"
_QUOTA_LIMIT = re.compile(re.escape(QUOTA_TEXT) + r" which is (\d+)")


def receiver_limit(exc: BaseException, default: int = 5) -> int:
    """The limit a receiver-quota refusal names (the service's is 5; the emulator's may differ).

    >>> receiver_limit(ValueError(QUOTA_TEXT + " which is 3. List of connected receivers - nil."))
    3
    >>> receiver_limit(ValueError("something else"))
    5
    """
    match = _QUOTA_LIMIT.search(str(exc))
    return int(match[1]) if match else default


def first_line(exc: BaseException) -> str:
    """The first line of an SDK error (its later lines mostly repeat it), type included, and the
    service's reason where the SDK puts it on a line of its own (a refused token says why there).

    >>> first_line(ConnectionResetError("peer reset\\nError condition: socket"))
    'ConnectionResetError: peer reset'
    >>> first_line(ValueError("CBS Token authentication failed.\\nStatus code: 401\\nDescription: InvalidSignature"))
    'ValueError: CBS Token authentication failed. InvalidSignature'
    """
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    text = lines[0] if lines else ""
    reason = next((line.removeprefix("Description: ") for line in lines[1:] if line.startswith("Description: ")), "")
    if reason and reason not in text:
        text = f"{text} {reason}"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def rejection(endpoint: HubEndpoint, kind: Failure, exc: BaseException, *, partition: str, group: str) -> HubError:
    """The error to report for a non-transient failure."""
    where = f"partition {partition} of {endpoint.describe()} (consumer group {group})"
    detail = endpoint.redact(first_line(exc))
    if kind is Failure.STOLEN:
        return PartitionStolen(
            f"another reader with a higher owner level took {where}; this reader stops rather than "
            f"fight for it ({detail})"
        )
    messages = {
        Failure.NOT_FOUND: f"{where}: the hub, partition or consumer group does not exist",
        Failure.POSITION_AHEAD: f"{where}: the start position is past the partition's last event",
        Failure.AUTH: f"{where}: not authorized (check the key or the identity's Event Hubs role)",
    }
    return HubRejected(f"{messages.get(kind, where)} ({detail})")
