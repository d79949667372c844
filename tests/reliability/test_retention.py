"""Retention drops events the pump still needs: the exact gap is reported, and no state lacks events silently."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import thaw

from devservices.emulator import EmulatorProcess
from statepump.core.captureformat import DEFAULT_NAME_FORMAT, render_name, write_capture_file
from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.stores.snapshots import initial_version
from tests.reliability.replay import read_everything, send
from tests.reliability.sidecar import Sidecar, clean_environment
from tests.reliability.test_storage_faults import bodies, expire

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]


def folded(events: list[Event]) -> Any:
    """The JSON form of the fold of ``events`` (which start at 0)."""
    return thaw(fold(initial_version(config, "0"), events, config, applied_at=datetime.now(UTC)).version.state)


def assert_reports_gap(car: Sidecar, first: int, last: int, events: list[Event]) -> dict[str, Any]:
    status = car.wait_status(lambda s: s["gap"] is not None, "the gap to be reported")
    assert status["gap"] == {"first": first, "last": last}, status
    served = status["sequence"]
    assert served < first and status["ready"] is False
    assert f"{first}" in status["not_ready_reason"] and f"{last}" in status["not_ready_reason"]
    code, _, body = car.get("/readyz")
    assert code == 503 and str(first) in json.loads(body)["reason"]
    if served >= 0:  # what is served is exactly the fold of 0..sequence: never anything from after the hole
        assert car.state() == folded(events[: served + 1])
    else:  # nothing applied yet: no state at all is served, and the answer says why
        code, _, body = car.get("/v1/state")
        assert code == 503 and f"events {first}..{last} are missing" in json.loads(body)["reason"]
    assert status["events_applied"] == served + 1
    assert "not serving as ready" in car.log()
    return status


async def test_retention_expiring_while_catching_up_reports_the_exact_gap(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None, admin=True)
    total = 12_000
    for start in range(0, total, 2000):
        send(hub.connection_string, bodies(2000, start))
    events = await read_everything(hub.connection_string)
    env = {**clean_environment(), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # A reducer of 0.2 ms an event makes the catch-up last seconds: long enough to expire under it.
    flags = ["--connection-string", hub.connection_string, "--reducer", "tests.reliability.explosive:slow_config"]
    with Sidecar(flags, tmp_path, env=env) as car:
        car.wait_status(lambda s: s["sequence"] >= 300, "the catch-up to be under way")
        expire(hub, 10_000)  # the source buffers at most ~7,000 events ahead of the fold
        status = car.wait_status(lambda s: s["gap"] is not None, "the gap to be reported")
        first = status["gap"]["first"]
        assert status["sequence"] == first - 1 < 10_000  # stopped right before the first expired event it needed
        status = assert_reports_gap(car, first, 9_999, events)
        assert status["events_skipped_by_gap"] == 0
        assert car.process.poll() is None
        assert car.terminate() == 0


def write_capture_dir(root: Path, events: list[Event], per_file: int) -> None:
    """Capture files of ``per_file`` events, one window a minute apart, named as the service names them."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, first in enumerate(range(0, len(events), per_file)):
        path = root / render_name(DEFAULT_NAME_FORMAT, "emulator", "hub", "0", start + timedelta(minutes=n))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_capture_file(f, events[first : first + per_file])


async def test_capture_lagging_behind_retention_reports_the_exact_gap(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None, admin=True)
    send(hub.connection_string, bodies(3000))
    events = await read_everything(hub.connection_string)
    # Capture wrote 0..1999 (in 4 files) and has not caught up; retention dropped 0..2499 from the hub.
    capture = tmp_path / "capture"
    write_capture_dir(capture, events[:2000], per_file=500)
    expire(hub, 2500)
    flags = ["--connection-string", hub.connection_string, "--capture-dir", str(capture)]
    with Sidecar(flags, tmp_path) as car:
        status = assert_reports_gap(car, 2000, 2499, events)
        # The plan sees the hole before reading anything: it applies nothing it would have to stop in.
        assert status["events_from_hub"] == 0 and status["events_from_capture"] == status["sequence"] + 1
        assert car.terminate() == 0
