"""Benchmark the radial warm-up clustering at scale (`make bench-radial-subsample`, after
`make bench-scale-run` kept its 50,000 store in bench/work/scale50k): the classical clustering of the
radial descriptors (global BIC over K = 2–20, then the recursive split tests) on all N against the
same on a random subsample, every subtomogram then assigned by a full-covariance Gaussian per cluster
in descriptor space. K, homogeneity and completeness against the truth; the global BIC's K apart.
Writes bench/results/radial_subsample.json."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(REPO / "bench" / "work" / "scale50k" / "set.h5"))
    ap.add_argument("--samples", type=int, nargs="+", default=[5000, 0], help="subsample sizes (0: all)")
    args = ap.parse_args()
    from discaflow.cluster.mixtures import fit_mixtures, fit_pca, mixture_from_labels
    from discaflow.cluster.radial import cluster_radial, store_radial_features
    from discaflow.disca.estep import RADIAL_SPLIT_DIMS, REG_COVAR
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    with SubtomogramStore(args.store) as s:
        truth = s.column("label")
        f = store_radial_features(s)
    n, cands, rng = len(f), list(range(2, 21)), np.random.default_rng(0)
    rows = []
    for m in args.samples:
        idx = np.sort(rng.choice(n, m, replace=False)) if 0 < m < n else np.arange(n)
        t = time.perf_counter()
        z = fit_pca(f[idx], 16, 0).transform(f[idx])
        _, fits = fit_mixtures(z, cands, reg_covar=REG_COVAR, seed=0, n_jobs=-1)
        labels = cluster_radial(f[idx], cands, split_dims=RADIAL_SPLIT_DIMS, seed=0, reg_covar=REG_COVAR, n_jobs=-1)
        if len(idx) < n:
            labels = mixture_from_labels(f[idx], labels, REG_COVAR, 0).predict(f)
        sc = clustering_scores(truth, labels)
        rows.append({"n": n, "fitted_on": len(idx), "global_bic_k": min(fits.values(), key=lambda x: x.bic).k,
                     **sc, "seconds": time.perf_counter() - t})
        print(f"fitted on {len(idx)} of {n}: global BIC K {rows[-1]['global_bic_k']}, after splits K {sc['k']}, "
              f"homogeneity {sc['homogeneity']:.3f}, completeness {sc['completeness']:.3f}", flush=True)
    write_result("radial_subsample", {"store": Path(args.store).name, "rows": rows})


if __name__ == "__main__":
    main()
