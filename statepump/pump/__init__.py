"""The pump: load a snapshot, catch up, tail the hub, publish versions (see :mod:`.executor`)."""

from statepump.pump.executor import CATCHUP_PUBLISH_INTERVAL, Pump, PumpFailed, Subscriber

__all__ = ["CATCHUP_PUBLISH_INTERVAL", "Pump", "PumpFailed", "Subscriber"]
