"""Benchmark radial_cost (`make bench-radial-cost`): what DISCA's radial steps (the default
design discaflow) cost as N grows — the part of an EM iteration that runs on the CPU even when
the network runs on a GPU.

Per N (default 2,000, 20,000 and 200,000 subtomograms):
1. radial descriptors (radial.radial_features: radial profile, log radial power spectrum and
   principal moments of a 24³ box) — throughput measured on 2,000 synthetic subtomograms, projected;
2. the warm-up clustering (radial.cluster_radial over candidates 2–20; once per run);
3. one E-step's radial split test (splitting.split_clusters, tied covariances, up to SPLIT_MAX_PARTS parts,
   SPLIT_N_INIT restarts each) and radial merge test (splitting.merge_clusters, every pair of clusters).
Steps 2–3 run on synthetic descriptors of the real length: 8 well-separated Gaussian clusters of
equal size, so the split test finds nothing to split and the merge test declines every pair (each
pair is one two-part fit — the common case once K is right). Steps 2–3 run on ``--jobs`` processes
(mixtures.parallel_map; default -1, every CPU, as DISCA; 1 for the single-process cost). Prints seconds
per step and per vector and writes bench/results/radial_cost.json (radial_cost_jobs1.json etc. for
another --jobs). Not a timed test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def synthetic_descriptors(n: int, dims: int, k: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` standardised vectors of ``dims`` dimensions from ``k`` Gaussian clusters (a within-cluster
    spread of 0.3–1.5 along rotated directions, centres about 8 apart)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dims)) * 8 / np.sqrt(2 * dims)  # expected distance between two: 8
    mix = np.linalg.qr(rng.normal(size=(dims, dims)))[0] * rng.uniform(0.3, 1.5, dims)
    labels = np.arange(n) % k
    x = centres[labels] + rng.normal(size=(n, dims)) @ mix
    return (x - x.mean(0)) / x.std(0)


def descriptor_rate(n: int = 2000, box: int = 24) -> tuple[float, int]:
    """Radial descriptors per second on synthetic subtomograms (a blob in noise), and their length."""
    from discaflow.cluster.radial import radial_features

    rng = np.random.default_rng(1)
    g = np.arange(box) - box // 2
    r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
    x = (-np.exp(-r2 / 18.0) + rng.normal(0, 1, (n, box, box, box))).astype(np.float32)
    radial_features(x[:16])  # warm caches
    t = time.perf_counter()
    for s in range(0, n, 256):
        f = radial_features(x[s:s + 256])
    return n / (time.perf_counter() - t), f.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    ap.add_argument("--clusters", type=int, default=8)
    ap.add_argument("--max-members", type=int, default=None,
                    help="the E-step tests' member cap (default splitting.SPLIT_MAX_MEMBERS; 0: none, to see what the cap "
                         "saves; the warm-up clustering keeps the default)")
    ap.add_argument("--jobs", type=int, default=-1, help="processes for the fits (default -1: every CPU, as DISCA)")
    args = ap.parse_args()

    from discaflow.cluster.mixtures import resolve_jobs
    from discaflow.cluster.splitting import SPLIT_MAX_MEMBERS, SPLIT_MAX_PARTS, SPLIT_N_INIT, merge_clusters, split_clusters
    from discaflow.cluster.radial import cluster_radial

    cap = SPLIT_MAX_MEMBERS if args.max_members is None else (args.max_members or None)
    rate, dims = descriptor_rate()
    print(f"radial descriptors: {rate:.0f} subtomograms/s (24³, {dims} values each)", flush=True)
    rows = []
    for n in args.sizes:
        x = synthetic_descriptors(n, dims, args.clusters)
        t = time.perf_counter()
        labels = cluster_radial(x, range(2, 21), n_jobs=args.jobs)
        t_warm = time.perf_counter() - t
        t = time.perf_counter()
        _, recs = split_clusters(x, labels, dims=24, max_clusters=20, covariance_type="tied", max_parts=SPLIT_MAX_PARTS,
                                 max_members=cap, n_jobs=args.jobs)
        t_split = time.perf_counter() - t
        t = time.perf_counter()
        merged, merges = merge_clusters(x, labels, dims=24, covariance_type="tied", max_members=cap, n_jobs=args.jobs)
        t_merge = time.perf_counter() - t
        row = {"n": n, "k_found": int(labels.max() + 1), "splits": int(sum(r["split"] for r in recs)),
               "merges": len(merges), "descriptor_seconds_projected": n / rate, "warmup_clustering_seconds": t_warm,
               "split_test_seconds": t_split, "merge_test_seconds": t_merge}
        rows.append(row)
        print(f"N = {n:>7}: K found {row['k_found']}, descriptors {n / rate:7.1f} s (projected), warm-up clustering "
              f"{t_warm:7.1f} s, split test {t_split:7.1f} s, merge test {t_merge:7.1f} s "
              f"({row['splits']} splits, {row['merges']} merges)", flush=True)
    per_estep = [(r["split_test_seconds"] + r["merge_test_seconds"]) / r["n"] for r in rows]
    print(f"split + merge time per vector at N = {rows[-1]['n']} / at N = {rows[0]['n']}: {per_estep[-1] / per_estep[0]:.2f} "
          f"(1.0 = linear); SPLIT_N_INIT {SPLIT_N_INIT}, SPLIT_MAX_PARTS {SPLIT_MAX_PARTS}, member cap {cap}, {args.clusters} clusters, "
          f"{resolve_jobs(args.jobs)} processes")
    write_result("radial_cost" + ("" if cap == SPLIT_MAX_MEMBERS else f"_cap{cap}") + ("" if args.jobs == -1 else f"_jobs{args.jobs}"), {
        "max_members": cap, "n_jobs": args.jobs, "processes": resolve_jobs(args.jobs), "descriptor_rate_per_s": rate, "descriptor_length": dims, "clusters": args.clusters,
        "split_n_init": SPLIT_N_INIT, "split_max_parts": SPLIT_MAX_PARTS, "rows": rows,
        "split_merge_time_per_vector_ratio": per_estep[-1] / per_estep[0]})


if __name__ == "__main__":
    main()
