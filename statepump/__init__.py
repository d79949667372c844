"""statepump: keep an application's configuration in RAM, folded from an Event Hubs partition."""

from statepump.core.configops import config
from statepump.core.errors import (
    ConfigError,
    PoisonEventError,
    SequenceGapError,
    ServiceUnavailable,
    SnapshotCorrupt,
    SnapshotExists,
    StatepumpError,
)
from statepump.core.events import Event, PartitionBounds, Version
from statepump.core.markup import markup
from statepump.core.reducer import Reducer, Transient, load_reducer, reducer
from statepump.pump import Pump, PumpFailed

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
