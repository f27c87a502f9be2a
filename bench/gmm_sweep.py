"""Benchmark the E-step's mixture sweep at scale (`make bench-gmm-sweep`): seconds of each candidate K's
full-covariance fit (one process) on N feature vectors in the E-step's PCA space (16 dimensions,
drawn from 8 Gaussian clusters), N = 50,000 and 200,000, and the whole sweep K = 2–20 on every CPU
as DISCA runs it. Writes bench/results/gmm_sweep.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def main() -> None:
    from discaflow.cluster.mixtures import fit_mixtures

    out = {"dims": 16, "true_k": 8, "candidates": [2, 20], "runs": []}
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((8, 16)) * 3.0
    for n in (50_000, 200_000):
        z = centres[rng.integers(0, 8, n)] + rng.standard_normal((n, 16))
        per_k = {}
        for k in range(2, 21):
            t = time.perf_counter()
            fit_mixtures(z, [k], n_jobs=1)
            per_k[k] = time.perf_counter() - t
        t = time.perf_counter()
        best, _ = fit_mixtures(z, range(2, 21), n_jobs=-1)
        sweep = time.perf_counter() - t
        out["runs"].append({"n": n, "seconds_per_k": per_k, "sweep_seconds_all_cpus": sweep, "k_chosen": best.k})
        print(f"N {n}: per K {min(per_k.values()):.1f}–{max(per_k.values()):.1f} s (sum {sum(per_k.values()):.0f} s), "
              f"sweep on all CPUs {sweep:.0f} s, K {best.k}", flush=True)
    write_result("gmm_sweep", out)


if __name__ == "__main__":
    main()
