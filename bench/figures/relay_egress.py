"""Figure 15: the hub's receivers and egress for N pumps fed by one relay, against N direct pumps.

(Issue 16 calls it figure 13; 13 and 14 are the send figures of issue 14.)

The emulator (a process of its own, with its admin endpoint) counts every
event and byte it delivers, by consumer group (``GET /partitions/0``,
``egress``): what a throughput unit bills, whoever receives it. On one hub,
in the same run and at the same time, three set-ups each fold the same
events, each on consumer groups of its own so that the counts stay apart:

* the anchor, one pump reading the hub directly (group ``anchor``): one
  reader's egress;
* one relay (``python -m statepump run``, group ``$Default``) and N pumps in
  this process fed by it (``RelaySource`` and ``RelayStore`` on its socket);
* N pumps in this process reading the hub directly, 5 per group (the
  service's limit of receivers per partition and group), ``direct-1`` ...

The hub holds ``preload`` events before anything starts (a start's catch-up),
then ``live`` more are sent once every pump is ready; the counts are read once
every pump has applied the last one. The goal: the relay-fed pumps cost the hub
one reader's egress (≤ 1.1×), where direct pumps cost N×.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figure import Figure, Size
from bench.figures.propagation import _sidecar
from bench.hub_throughput import bodies, preload
from devservices.emulator import EmulatorProcess
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource
from statepump.sources.relay import RelaySource
from statepump.stores.relaystore import RelayStore

GOAL = 1.1  # x one direct reader's egress
PER_GROUP = 5  # receivers per partition and consumer group
RELAY_GROUP = "$Default"  # the relay sidecar's (statepump run's default)


def _pumps(size: Size) -> int:
    return 20 if size.name == "full" else 5


async def _run(cs: str, socket_path: Path, n: int, preloaded: int, live: int, receivers: Any) -> dict[str, Any]:
    last = preloaded + live - 1
    anchor = Pump(EventHubSource(connection_string=cs, consumer_group="anchor"), eventhub="hub")
    where = [str(socket_path)]
    relayed = [Pump(RelaySource(where), store=RelayStore(where, "hub", "0"), eventhub="hub") for _ in range(n)]
    direct = [
        Pump(EventHubSource(connection_string=cs, consumer_group=f"direct-{i // PER_GROUP + 1}"), eventhub="hub")
        for i in range(n)
    ]
    everyone = [anchor, *relayed, *direct]
    try:
        for pump in everyone:
            await pump.start()
        await asyncio.gather(*(pump.wait_ready(timeout=600) for pump in everyone))
        held = receivers()
        began = time.perf_counter()
        await asyncio.to_thread(preload, cs, bodies(live))
        await asyncio.gather(*(pump.wait_for(last, timeout=600) for pump in everyone))
        took = time.perf_counter() - began
        states = {id(p): p.version.state for p in everyone}
        if any(states[id(p)] != anchor.version.state for p in everyone):
            raise AssertionError("the pumps do not hold one state")
    finally:
        await asyncio.gather(*(pump.stop() for pump in everyone), return_exceptions=True)
    return {"receivers": held, "live_seconds": took}


def run(size: Size) -> Figure:
    n = _pumps(size)
    groups = math.ceil(n / PER_GROUP)
    preloaded = live = max(200, size.catchup_events // 10)
    process = EmulatorProcess.on_free_ports(
        partitions=1, admin=True, extra=["--consumer-group", f"anchor,direct-{{1..{groups}}}"]
    )
    process.start()
    try:
        cs = process.connection_string
        preload(cs, bodies(preloaded))
        with tempfile.TemporaryDirectory(prefix="bench-relay-egress-") as tmp:
            relay, socket_path = _sidecar(cs, Path(tmp))
            try:
                result = asyncio.run(_run(cs, socket_path, n, preloaded, live, process.receivers))
            finally:
                relay.terminate()
                relay.wait(15)
        egress = process.egress()
    finally:
        process.stop()
    one = egress["anchor"]
    via_relay = egress[RELAY_GROUP]
    direct = {"events": 0, "bytes": 0}
    for group in (f"direct-{g}" for g in range(1, groups + 1)):
        for key in direct:
            direct[key] += egress[group][key]
    held = result["receivers"]
    direct_receivers = sum(held.get(f"direct-{g}", 0) for g in range(1, groups + 1))
    ratio = via_relay["events"] / one["events"]
    byte_ratio = via_relay["bytes"] / one["bytes"]
    direct_ratio = direct["events"] / one["events"]
    total = preloaded + live
    return Figure(
        "15",
        f"hub receivers and egress of {n} pumps fed by one relay, against {n} direct pumps ({total:,} events)",
        (
            f"{n} via a relay: {held.get(RELAY_GROUP, 0)} receiver, {via_relay['events']:,} events "
            f"({via_relay['bytes'] / 1e6:,.2f} MB); {n} direct: {direct_receivers} receivers, "
            f"{direct['events']:,} events ({direct['bytes'] / 1e6:,.2f} MB)"
        ),
        f"one direct pump, same run: {held.get('anchor', 0)} receiver, {one['events']:,} events "
        f"({one['bytes'] / 1e6:,.2f} MB)",
        f"{ratio:.2f}× one reader (bytes {byte_ratio:.2f}×); direct {direct_ratio:.1f}×",
        f"≤ {GOAL:g}× one reader's egress",
        ratio <= GOAL and byte_ratio <= GOAL,
        (
            f"The hub held {preloaded:,} events before the pumps started (each start's catch-up) and got {live:,} "
            f"more once all were ready ({result['live_seconds']:.1f} s until every pump applied the last); the "
            "emulator counted every event and byte it delivered, by consumer group (its admin endpoint's `egress`). "
            f"The {n} direct pumps read {groups} groups of at most {PER_GROUP}; every pump ended with the anchor's "
            "state.",
            "The relay-fed pumps loaded the relay's snapshot and read its feed: a herd of them costs the hub "
            "nothing, where each direct pump reads every event since the snapshot again (deploy/README.md, "
            '"Relays").',
        ),
    )
