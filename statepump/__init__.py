"""statepump: keep an application's configuration in RAM, folded from an Event Hubs partition."""

from statepump.errors import (
    ConfigError,
    PoisonEventError,
    SequenceGapError,
    ServiceUnavailable,
    SnapshotCorrupt,
    SnapshotExists,
    StatepumpError,
)
from statepump.events import Event, PartitionBounds, Version
from statepump.pump import Pump, PumpFailed
from statepump.reducers import Reducer, Transient, config, load_reducer, markup, reducer

__all__ = [
    "ConfigError",
    "Event",
    "PartitionBounds",
    "PoisonEventError",
    "Pump",
    "PumpFailed",
    "Reducer",
    "SequenceGapError",
    "ServiceUnavailable",
    "SnapshotCorrupt",
    "SnapshotExists",
    "StatepumpError",
    "Transient",
    "Version",
    "config",
    "load_reducer",
    "markup",
    "reducer",
]
