"""Shared by the benchmarks: machine description, git commit, result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# DISCAFLOW_BENCH_RESULTS redirects the result files (the test that runs a benchmark end to end uses it)
RESULTS = Path(os.environ.get("DISCAFLOW_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))
REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    from discaflow.cpu import cpu_has_native_bfloat16

    # "AMD EPYC" names two machine kinds here: with avx512_bf16 (the 2026-11 figures) and AVX2-only,
    # where bfloat16 is emulated and ~18× slower than float32; record which ran
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_bfloat16": cpu_has_native_bfloat16(), "gpu": gpu,
            "python": platform.python_version()}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The code a run uses is the code at its start: record that commit, not the one at its end.
START_COMMIT = git_commit()


def write_result(name: str, figures: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": START_COMMIT, "machine": machine(), **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return path


# Peak resident memory of the running process in MB, as a Python expression for child scripts: VmHWM
# of the child itself (ru_maxrss would carry the parent's peak across exec on Linux).
PEAK_RSS_MB = 'int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024'


def run_child(code: str, *args) -> dict:
    """Run ``code`` in a fresh Python process (so that its peak RSS is its own) and return the JSON
    object printed on its last line; a failing child stops the benchmark with its error."""
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def structure_path(name: str) -> Path:
    """The map of a structure by name: resources/structures/ first, then ../shared/data/polnet/maps_10A/."""
    for folder in (REPO / "resources" / "structures", REPO.parent / "shared" / "data" / "polnet" / "maps_10A"):
        if (folder / f"{name}.mrc").exists():
            return folder / f"{name}.mrc"
    raise SystemExit(f"structure {name}: no {name}.mrc in resources/structures/ or ../shared/data/polnet/maps_10A/")
