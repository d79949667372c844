"""Prometheus metrics read from a real pump at scrape time, in a registry of their own."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from statepump.pump import Pump
from statepump.serving import metrics
from statepump.sources.memory import MemorySource
from tests.server.conftest import publish


def samples(pump: Pump[Any], stats: metrics.RequestStats) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition(metrics.registry(pump, stats)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_scrape_reads_the_pump_now(pump: Pump[Any], source: MemorySource) -> None:
    stats = metrics.RequestStats()
    before = samples(pump, stats)
    assert before[("statepump_sequence", ())] == 1
    assert before[("statepump_ready", ())] == 1
    assert before[("statepump_events_applied_total", (("source", "hub"),))] == 2
    await publish(source, pump, {"op": "set", "path": "a", "value": 1})
    after = samples(pump, stats)
    assert after[("statepump_sequence", ())] == 2
    assert after[("statepump_events_applied_total", (("source", "hub"),))] == 3


def test_request_counts_and_latency_histogram(pump: Pump[Any]) -> None:
    stats = metrics.RequestStats()
    for seconds in (0.00004, 0.0002, 0.3):
        stats.observe("state", 200, seconds)
    stats.observe("state", 404, 0.00004)
    found = samples(pump, stats)
    assert found[("statepump_http_requests_total", (("code", "200"), ("endpoint", "state")))] == 3
    assert found[("statepump_http_requests_total", (("code", "404"), ("endpoint", "state")))] == 1
    assert found[("statepump_http_request_duration_seconds_bucket", (("endpoint", "state"), ("le", "5e-05")))] == 2
    assert found[("statepump_http_request_duration_seconds_bucket", (("endpoint", "state"), ("le", "0.00025")))] == 3
    assert found[("statepump_http_request_duration_seconds_bucket", (("endpoint", "state"), ("le", "+Inf")))] == 4
    assert found[("statepump_http_request_duration_seconds_count", (("endpoint", "state"),))] == 4


def test_labels_are_names_only_and_the_default_registry_is_untouched(pump: Pump[Any]) -> None:
    stats = metrics.RequestStats()
    stats.observe("status", 200, 0.001)
    labels = {name for _, pairs in samples(pump, stats) for name, _ in pairs}
    assert labels <= {"partition", "eventhub", "reducer", "reducer_version", "source", "endpoint", "code", "le"}
    assert REGISTRY.get_sample_value("statepump_sequence") is None
