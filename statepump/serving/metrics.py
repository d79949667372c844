"""Prometheus metrics of a pump and of the socket server that serves it.

Nothing here runs on the fold's hot path: :class:`PumpCollector` reads
``pump.status()`` when Prometheus scrapes. The server counts its requests in
:class:`RequestStats` with plain integer additions (a ``prometheus_client``
histogram takes a lock per observation, which is a measurable share of a
30 µs request), and the collector turns those counts into a counter and a
histogram at scrape time as well.

Each server gets its own :class:`~prometheus_client.CollectorRegistry`, never
the process-global default one, so two pumps in one process do not collide.
Labels carry the partition, event hub and reducer names only: no connection
string, key or token ever reaches a label.

>>> class Idle:
...     def status(self):
...         return {"sequence": 4, "ready": True, "partition": "0", "reducer": {"name": "config", "version": 1}}
>>> text = exposition(registry(Idle(), RequestStats()))
>>> b"statepump_sequence 4.0" in text and b"statepump_ready 1.0" in text
True
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Upper bounds (seconds) of the request latency histogram: a cached read
#: takes tens of microseconds, a read-your-writes wait up to minutes.
LATENCY_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    30.0,
    300.0,
)


class HasStatus(Protocol):
    def status(self) -> Mapping[str, Any]: ...


class RequestStats:
    """Request counts by (endpoint, status) and latency by endpoint, for the collector.

    >>> stats = RequestStats()
    >>> stats.observe("state", 200, 0.00007)
    >>> stats.counts[("state", 200)]
    1
    """

    __slots__ = ("buckets", "connections", "counts", "sums", "waiting", "watchers")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        #: Open connections and open watch streams, kept up to date by the server.
        self.connections = 0
        self.watchers = 0
        #: Requests waiting for their ``min_sequence``.
        self.waiting = 0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        buckets = self.buckets.get(endpoint)
        if buckets is None:
            buckets = self.buckets[endpoint] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.sums[endpoint] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[endpoint] += seconds


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


class PumpCollector(Collector):
    """Reads a pump's ``status()`` and the server's :class:`RequestStats` at scrape time."""

    def __init__(self, pump: HasStatus, requests: RequestStats | None = None) -> None:
        self._pump = pump
        self._requests = requests

    def collect(self) -> Iterator[Metric]:
        status = self._pump.status()
        yield from self._pump_metrics(status)
        if self._requests is not None:
            yield from self._request_metrics(self._requests)

    @staticmethod
    def _pump_metrics(status: Mapping[str, Any]) -> Iterator[Metric]:
        def gauge(name: str, key: str, doc: str) -> Iterator[Metric]:
            value = _number(status.get(key))
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, key: str, doc: str) -> Iterator[Metric]:
            value = _number(status.get(key))
            if value is not None:
                yield CounterMetricFamily(name, doc, value=value)

        reducer = status.get("reducer") or {}
        info = {
            "partition": str(status.get("partition", "")),
            "eventhub": str(status.get("eventhub", "") or ""),
            "reducer": str(reducer.get("name", "")),
            "reducer_version": str(reducer.get("version", "")),
        }
        yield InfoMetricFamily("statepump", "What this pump folds: partition, event hub and reducer.", value=info)
        yield from gauge("statepump_sequence", "sequence", "Sequence number of the last applied event (-1: none).")
        yield from gauge("statepump_lag_events", "lag_events", "Events enqueued on the partition but not applied.")
        yield from gauge("statepump_lag_seconds", "lag_seconds", "Age of the last applied event behind the newest.")
        yield from gauge("statepump_ready", "ready", "1 when caught up and applying, 0 otherwise.")
        yield from gauge(
            "statepump_snapshot_age_seconds", "snapshot_age_seconds", "Age of the snapshot the pump started from."
        )
        yield from gauge(
            "statepump_snapshot_sequence", "snapshot_sequence", "Sequence number of the snapshot started from."
        )
        applied = CounterMetricFamily(
            "statepump_events_applied", "Events applied, by where they were read.", labels=["source"]
        )
        for source, key in (("capture", "events_from_capture"), ("hub", "events_from_hub")):
            value = _number(status.get(key))
            if value is not None:
                applied.add_metric([source], value)
        yield applied
        yield from counter("statepump_duplicates_skipped", "duplicates_skipped", "Redelivered events skipped.")
        yield from counter("statepump_poison_events", "poison_events", "Events the reducer failed on (poison).")
        yield from counter("statepump_events_rejected", "events_rejected", "Events rejected (a no-op).")
        yield from counter(
            "statepump_poison_events_skipped_by_control",
            "poison_events_skipped_by_control",
            "Poison events a control event (statepump skip) released this pump from.",
        )
        yield from counter("statepump_reconnects", "reconnects", "Reconnections to the event source.")
        yield from counter(
            "statepump_quota_refusals",
            "quota_refusals",
            "Receivers the hub refused because their consumer group had its readers on the partition.",
        )
        if status.get("consumer_groups"):
            held = GaugeMetricFamily(
                "statepump_consumer_group",
                "1 for the consumer group whose receiver slot this pump holds (none while it holds none).",
                labels=["consumer_group"],
            )
            if status.get("consumer_group"):
                held.add_metric([str(status["consumer_group"])], 1.0)
            yield held
            yield from gauge("statepump_consumer_groups", "consumer_groups", "Consumer groups in the pump's pool.")
        yield from counter("statepump_fold_seconds", "fold_seconds_total", "Seconds spent applying events.")
        yield from counter("statepump_fold_batches", "fold_batches", "Batches of events applied.")
        gap = status.get("gap")
        yield GaugeMetricFamily(
            "statepump_gap_events",
            "Events known missing between what was applied and what is readable (0: no gap).",
            value=float(gap["last"] - gap["first"] + 1) if isinstance(gap, Mapping) else 0.0,
        )

    @staticmethod
    def _request_metrics(stats: RequestStats) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "statepump_http_requests", "Socket API requests answered.", labels=["endpoint", "code"]
        )
        for (endpoint, code), count in sorted(stats.counts.items()):
            requests.add_metric([endpoint, str(code)], float(count))
        yield requests
        latency = HistogramMetricFamily(
            "statepump_http_request_duration_seconds",
            "Time from a complete request to its response handed to the socket.",
            labels=["endpoint"],
        )
        for endpoint, counts in sorted(stats.buckets.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*LATENCY_BUCKETS, math.inf), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if math.isinf(bound) else repr(bound), float(cumulative)))
            latency.add_metric([endpoint], buckets, sum_value=stats.sums[endpoint])
        yield latency
        yield GaugeMetricFamily("statepump_http_connections", "Open socket API connections.", value=stats.connections)
        yield GaugeMetricFamily("statepump_watch_streams", "Open /v1/watch streams.", value=stats.watchers)
        yield GaugeMetricFamily(
            "statepump_http_waiting", "Requests waiting for their min_sequence.", value=stats.waiting
        )


def registry(pump: HasStatus, requests: RequestStats | None = None) -> CollectorRegistry:
    """A fresh registry holding only this pump's (and server's) metrics."""
    result = CollectorRegistry(auto_describe=False)
    result.register(PumpCollector(pump, requests))
    return result


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (``text/plain; version=0.0.4``)."""
    return generate_latest(registry)
