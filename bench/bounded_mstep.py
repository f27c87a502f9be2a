"""Benchmark the bounded M-step (`make bench-bounded-mstep`): DISCA with every subtomogram in each
M-step epoch (train_per_cluster 0) against at most M of each cluster, on Table-1 cells of the
like-for-like benchmark (5 × 400, paper SNR convention, its narrow network and settings). M = 200 is
half a class, so the cap binds in every cluster (at the default 1,000 it would not bind here: no
cluster of these sets reaches 1,000, and the epoch is then the full one, draw for draw).
Writes bench/results/bounded_mstep_snr<x>_tilt<t>.json per cell; reruns resume each run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402
from table1 import PRESETS, STRUCTURES, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snrs", type=float, nargs="+", default=[0.1, 0.03])
    ap.add_argument("--tilt", type=int, default=60)
    ap.add_argument("--caps", type=int, nargs="+", default=[0, 200], help="train_per_cluster values (0: all)")
    ap.add_argument("--work-dir", default=str(REPO / "bench" / "work" / "bounded_mstep"))
    args = ap.parse_args()
    from discaflow.disca import Disca
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    preset = PRESETS["paper-convention"]
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for snr in args.snrs:
        store = simulate(work / f"snr{snr:g}_tilt{args.tilt}.h5", STRUCTURES, snr, args.tilt, preset["per_class"], "paper")
        with SubtomogramStore(store) as s:
            truth = s.column("label")
        runs = {}
        for cap in args.caps:
            params = {**preset["params"], "train_per_cluster": cap}
            t = time.perf_counter()
            em = Disca(**params).fit(store, work / f"snr{snr:g}_tilt{args.tilt}_cap{cap}")
            trained = [h for h in em.history_ if h["loss"] is not None]
            runs[str(cap)] = {**clustering_scores(truth, em.labels_), "iterations": len(em.history_),
                              "seconds": time.perf_counter() - t,
                              "mstep_seconds_mean": float(np.mean([h["seconds"]["total"] - h["seconds"]["features"]
                                                                   - h["seconds"]["mixtures"] for h in trained]))}
            r = runs[str(cap)]
            print(f"SNR {snr:g}, train_per_cluster {cap}: K {r['k']}, homogeneity {r['homogeneity']:.3f}, "
                  f"completeness {r['completeness']:.3f}, M-step {r['mstep_seconds_mean']:.0f} s", flush=True)
        write_result(f"bounded_mstep_snr{snr:g}_tilt{args.tilt}",
                     {"snr": snr, "tilt_deg": args.tilt, "snr_convention": "paper", "structures": list(STRUCTURES),
                      "per_class": preset["per_class"], "params": preset["params"], "runs": runs})


if __name__ == "__main__":
    main()
