"""``python -m bench --quick`` runs every figure end to end, so the benchmarks never rot (no thresholds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import previous
from bench.suite import FIGURES

ROOT = Path(__file__).resolve().parents[2]


# Two minutes alone on two cores; beside three other test workers, up to five.
@pytest.mark.timeout(660)
def test_quick_suite_runs_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    figures = previous(out)
    assert set(figures) == set(FIGURES), result.stderr[-3000:]
    for number, figure in figures.items():
        # Each figure measured something, or said in one line why it could not.
        assert figure.measured, number
        assert "Traceback" not in figure.measured, number
    not_run = {n: f.measured for n, f in figures.items() if f.measured.startswith("not run")}
    assert (result.returncode == 0) == (not not_run), result.stderr[-3000:]
    assert "| # | figure |" in result.stdout
