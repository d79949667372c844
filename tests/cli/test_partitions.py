"""A pump reads one partition: on a hub of several, it says which it never reads, and
``statepump send --partition-key`` refuses to route where no pump may read (issue 18)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = pytest.mark.emulator


def send(*args: str, hub: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statepump", "send", "--connection-string", hub, "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_environment(),
    )


def test_a_hub_of_several_partitions_is_warned_about_and_keys_are_refused_without_force(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None, partitions=3)
    with Sidecar(["--connection-string", hub.connection_string], tmp_path) as car:
        status = car.wait_ready()
        assert status["partitions_not_read"] == ["1", "2"]
        warnings = [line for line in car.log().splitlines() if "partitions; this pump reads only" in line]
        assert len(warnings) == 1, car.log()
        assert warnings[0].endswith(
            "WARNING statepump.sources.eventhub: event hub hub has 3 partitions; this pump reads only partition 0, "
            "so events sent to partition 1, 2 (by partition key, or by the hub's choice) are never applied"
        )

        body = '{"op": "set", "path": "a", "value": 1}'
        refused = send("--partition-key", "tenant-7", body, hub=hub.connection_string, data=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "statepump send: --partition-key: event hub hub has 3 partitions (0, 1, 2) and a key routes by hash, "
            "maybe to one the pump (partition 0) never reads; send with --partition 0 instead, "
            "or add --force to route by key anyway"
        ]
        forced = send("--partition-key", "tenant-7", "--force", body, hub=hub.connection_string, data=tmp_path)
        assert forced.returncode == 0, forced.stderr
        plain = send(body, hub=hub.connection_string, data=tmp_path)  # --partition's default, 0: the pump's
        assert plain.stdout.split() == ["0"], plain.stderr
        car.wait_status(lambda s: s["sequence"] == 0, "the event sent to partition 0 to be applied")
        assert car.terminate() == 0


def test_a_key_on_a_hub_of_one_partition_is_sent(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None, partitions=1)
    sent = send("--partition-key", "tenant-7", '{"op": "set", "path": "a", "value": 1}', hub=hub.connection_string,
                data=tmp_path)
    assert (sent.returncode, sent.stdout.split()) == (0, ["0"]), sent.stderr
