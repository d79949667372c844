"""The Event Hubs client: everything statepump does with ``azure-eventhub``.

* :mod:`~statepump.eventhubs.connection`: connection strings, secrets kept out
  of text, and :class:`HubEndpoint`, which builds the SDK's clients;
* :mod:`~statepump.eventhubs.failures`: the retry policy and how SDK errors
  are sorted into "retry" and "report";
* :mod:`~statepump.eventhubs.transport`: the one module that touches the SDK's
  private API (``PromptTransport``), guarded by
  ``tests/eventhubs/test_transport_contract.py``;
* :mod:`~statepump.eventhubs.receiver`: one receive session as a bounded queue;
* :mod:`~statepump.eventhubs.send`: ``send_events``, which returns the
  sequence numbers the hub gave.

The pump's event source over these is
:class:`statepump.sources.eventhub.EventHubSource`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: statepump 0.1's ``statepump.eventhubs`` was one module; its public names, and where they are now.
_MOVED = {
    "connection": ("ConnectionString", "HubEndpoint", "parse_connection_string", "redact"),
    "failures": (
        "Backoff",
        "EventTooLarge",
        "Failure",
        "HubError",
        "HubRejected",
        "HubUnreachable",
        "PartitionStolen",
        "classify",
        "first_line",
        "rejection",
    ),
    "transport": ("Arrivals", "PromptTransport", "arrivals", "batch_complete", "prompt_receive", "receive_pause"),
    "receiver": ("Broken", "PartitionReceiver", "Received", "ReceiverClosed"),
    "send": ("SEND_ID_PROPERTY", "send_events", "sequence_numbers_by_count"),
}
_WHERE = {name: module for module, names in _MOVED.items() for name in names}


def __getattr__(name: str) -> Any:
    """``statepump.eventhubs.X`` of 0.1, for one release, with a ``DeprecationWarning``."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"statepump.eventhubs.{name} moved to statepump.eventhubs.{module}.{name} in statepump 0.2; "
        "the old path goes in 0.3",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"statepump.eventhubs.{module}"), name)
