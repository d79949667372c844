"""statepump: keep an application's configuration in RAM, folded from an Event Hubs partition.

Data flows one way, **source -> fold -> version -> readers**, and the folders
say where each part of that line lives:

* where data enters: ``sources/`` (the ``EventSource`` interface: Event Hubs,
  Capture files, memory) over the Azure clients ``eventhubs/`` and
  ``storage/``; snapshots come from ``stores/`` (the ``SnapshotStore``
  interface: a directory, Azure Blob);
* where it is folded: ``core/``, the pure part (events, the fold, the
  catch-up plan, reducers and the ``config`` language, the snapshot codec,
  Capture's file format, the socket API's HTTP core), tested without I/O;
  ``pump/`` is the I/O shell that loads, plans, reads, folds and publishes;
* where it leaves: the :class:`Pump`'s ``version`` (embedded), ``serving/``
  (the sidecar's socket API and metrics) and :mod:`statepump.client`.

``cli``, ``settings`` and ``components`` assemble the parts from one settings
model; ``emulator/`` is the local Event Hubs emulator; the snapshotter is the
separate ``snapshotter`` package.

>>> from statepump import Pump, reducer
>>> @reducer("flags", 1)
... def flags(state, event):
...     return state.set(event.body.decode(), True)
>>> flags.identity
'flags@1'
"""

from statepump import oldpaths
from statepump.core.configops import config, config_reducer
from statepump.core.errors import (
    ConfigError,
    PoisonEventError,
    Rejected,
    SequenceGapError,
    ServiceUnavailable,
    SnapshotCorrupt,
    SnapshotExists,
    StatepumpError,
)
from statepump.core.events import Event, PartitionBounds, Version
from statepump.core.markup import markup
from statepump.core.reducer import Reducer, Transient, load_reducer, reducer
from statepump.core.schema import Schema, SchemaViolation
from statepump.core.writecheck import Refused
from statepump.publisher import Publisher, SyncPublisher
from statepump.pump import Pump, PumpFailed

oldpaths.install()

__all__ = [
    "ConfigError",
    "Event",
    "PartitionBounds",
    "PoisonEventError",
    "Publisher",
    "Pump",
    "PumpFailed",
    "Reducer",
    "Refused",
    "Rejected",
    "Schema",
    "SchemaViolation",
    "SequenceGapError",
    "ServiceUnavailable",
    "SnapshotCorrupt",
    "SnapshotExists",
    "StatepumpError",
    "SyncPublisher",
    "Transient",
    "Version",
    "config",
    "config_reducer",
    "load_reducer",
    "markup",
    "reducer",
]
