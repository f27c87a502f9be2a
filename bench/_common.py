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
PEAK_RSS_MB = '__import__("discaflow.progress").progress.peak_rss_mb()'


def run_child(code: str, *args) -> dict:
    """Run ``code`` in a fresh Python process (so that its peak RSS is its own) and return the JSON
    object printed on its last line; a failing child stops the benchmark with its error."""
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


SHARED = REPO.parent / "shared" / "data"
STRUCTURE_FOLDERS = (REPO / "resources" / "structures", SHARED / "polnet" / "maps_10A",
                     SHARED / "polnet" / "maps_10A_membrane", SHARED / "chlamy_annotations" / "densities",
                     SHARED / "tomodrgn")


def structure_path(name: str) -> Path:
    """The map of a structure by name: resources/structures/ first, then the maps in ../shared/data/."""
    for folder in STRUCTURE_FOLDERS:
        if (folder / f"{name}.mrc").exists():
            return folder / f"{name}.mrc"
    raise SystemExit(f"structure {name}: no {name}.mrc in " + ", ".join(str(f) for f in STRUCTURE_FOLDERS))


# maps whose header voxel size is wrong (shared/data/README.md: tomoDRGN simulates them at 13.1 Å)
MAP_VOXEL_A = {"10076_classD_32": 13.1, "10076_classE_32": 13.1}
MIRROR = "mirror-"


def load_named(name: str, voxel_size_A: float = 16.0):
    """A structure by benchmark name: a map's name (structure_path), or ``mirror-<name>``, its
    enantiomer (the density reflected through the plane x = centre: the same radial profile, power
    spectrum and moments, the other hand)."""
    from dataclasses import replace

    import numpy as np

    from discaflow.simulate.structures import load_structure

    base = name[len(MIRROR):] if name.startswith(MIRROR) else name
    path = structure_path(base)
    if base in MAP_VOXEL_A:  # their headers also lack a machine stamp: a corrected copy, read permissively
        import mrcfile

        fixed = REPO / "bench" / "work" / "maps" / f"{base}.mrc"
        if not fixed.exists():
            fixed.parent.mkdir(parents=True, exist_ok=True)
            with mrcfile.open(path, permissive=True) as m:
                data = np.asarray(m.data, dtype=np.float32)
            with mrcfile.new(fixed, overwrite=True) as m:
                m.set_data(data)
                m.voxel_size = MAP_VOXEL_A[base]
        path = fixed
    s = load_structure(path, voxel_size_A, name=name, map_voxel_size_A=MAP_VOXEL_A.get(base))
    if name.startswith(MIRROR):
        mirrored = s.density[:, :, ::-1]
        if mirrored.shape[2] % 2 == 0:  # reflect about the centre voxel b // 2, not about (b - 1) / 2
            mirrored = np.roll(mirrored, 1, axis=2)
        s = replace(s, density=np.ascontiguousarray(mirrored))
    return s


def use_published_data_flow() -> None:
    """Make DISCA train as the published code does (the reference rows of bench/table1.py and
    bench/speed.py): every rotated copy computed up front in one thread and the epoch's data held in
    memory (1 + rotation_copies times the store), instead of batches read and rotated on worker threads."""
    import numpy as np

    from discaflow.augment import random_rotation_batch
    from discaflow.disca import mstep

    class MaterialisedTrainer(mstep.Trainer):
        def train_epoch(self, classifier, targets, learning_rate, epoch_seed, progress=None, labels=None):
            c = self.config
            batches, _ = self.epoch_batches(epoch_seed, labels)
            original = self.store.read(0, self.n)
            data = np.concatenate([original] + [random_rotation_batch(original, np.random.default_rng([c.seed, epoch_seed, 19, k]))
                                                for k in range(c.rotation_copies)])
            stream = ((data[b[:, 1] * self.n + b[:, 0]][..., None], targets[b[:, 0]]) for b in batches)
            return self.train_on(classifier, stream, learning_rate, progress)

    mstep.Trainer = MaterialisedTrainer
