"""`statepump snapshot inspect`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyrsistent import freeze

from statepump.core import codec
from tests.core.strategies import T0


def inspect(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statepump", "snapshot", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_metadata_and_a_summary_of_the_state(tmp_path: Path) -> None:
    f = tmp_path / "00000000000000000041.snapshot"
    state = freeze({"markup": {"tshirt": 0.03, "jeans": 0.1}, "flags": [1, 2, 3]})
    f.write_bytes(codec.encode(codec.SnapshotMeta("hub", "0", 41, T0, "config", 1, T0, 42), state))
    result = inspect(f)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sequence         41" in out
    assert "reducer          config@1" in out
    assert "events_folded    42" in out
    assert "3 maps/vectors/sets, 5 values" in out
    assert "top-level keys   2: flags, markup" in out


def test_a_corrupt_or_unknown_file_is_one_line_and_non_zero(tmp_path: Path) -> None:
    good = codec.encode(codec.SnapshotMeta("hub", "0", 1, T0, "config", 1, T0, 1), freeze({"a": 1}))
    (tmp_path / "cut.snapshot").write_bytes(good[:-5])
    (tmp_path / "other.bin").write_bytes(b"PK\x03\x04 a zip file")
    for name, message in (
        ("cut.snapshot", "truncated"),
        ("other.bin", "not a statepump snapshot"),
        ("missing.snapshot", "No such file"),
    ):
        result = inspect(tmp_path / name)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and name in lines[0]
