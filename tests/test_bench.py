"""The benchmark scripts run: a smoke-sized Table 1 (all three methods, every column) end to end.
Benchmarks are not tests; this only checks their harness, never their figures."""

import json
import os
import py_compile
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_bench_scripts_compile(script):
    py_compile.compile(str(REPO / "bench" / script), doraise=True)


@pytest.mark.slow
def test_table1_smoke_preset_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DISCAFLOW_BENCH_RESULTS": str(tmp_path / "results")}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "table1.py"), "--preset", "smoke", "--work-dir", str(tmp_path / "w")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "table1_smoke.json").read_text())
    cell = result["grid"][0]
    for method in ("discaflow", "reference", "classical", "classical_split"):
        assert 0 <= cell[method]["homogeneity"] <= 1 and cell[method]["k_true"] == 5
    assert cell["reference"]["k"] in (5, 10)  # the reference design's candidates, clipped for 60 subtomograms
    assert result["speed"]["per_iteration_ratios"][0] > 0 and len(result["sample_size"]) == 1
    assert "Table 1 (smoke preset" in out.stdout and "EM speed" in out.stdout
    md = subprocess.run([sys.executable, str(REPO / "bench" / "table1.py"), "--preset", "smoke", "--markdown"],
                        env=env, capture_output=True, text=True, timeout=120)
    assert md.returncode == 0, md.stderr[-2000:]
    assert "| ±60° | 0.1 | " in md.stdout and md.stdout.rstrip().endswith("0.988 (99.7) |")
