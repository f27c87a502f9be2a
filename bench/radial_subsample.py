"""Benchmark the radial warm-up clustering at scale (`make bench-radial-subsample`, after
`make bench-scale-run` kept its 50,000 store in bench/work/scale50k): the classical clustering of the
radial descriptors (global BIC over K = 2–20, then the recursive split tests) on all N against the
same on a random subsample, every subtomogram then assigned by a full-covariance Gaussian per cluster
in descriptor space (cluster_radial's ``max_fit``, as DISCA's ``fit_sample``). K, homogeneity and completeness against the truth; the global BIC's K apart.
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
    from discaflow.cluster.mixtures import fit_mixtures, fit_pca, fit_sample
    from discaflow.cluster.radial import cluster_radial, store_radial_features
    from discaflow.disca.estep import RADIAL_SPLIT_DIMS, REG_COVAR
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    with SubtomogramStore(args.store) as s:
        truth = s.column("label")
        f = store_radial_features(s)
    n, cands = len(f), list(range(2, 21))
    rows = []
    for m in args.samples:
        sample = fit_sample(n, m, 0)
        idx = np.arange(n) if sample is None else sample
        t = time.perf_counter()
        z = fit_pca(f[idx], 16, 0).transform(f[idx])
        _, fits = fit_mixtures(z, cands, reg_covar=REG_COVAR, seed=0, n_jobs=-1)
        # DISCA's warm-up (disca.fit_sample m): fitted to the sample, every subtomogram assigned
        labels = cluster_radial(f, cands, split_dims=RADIAL_SPLIT_DIMS, seed=0, reg_covar=REG_COVAR, n_jobs=-1, max_fit=m)
        sc = clustering_scores(truth, labels)
        rows.append({"n": n, "fitted_on": len(idx), "global_bic_k": min(fits.values(), key=lambda x: x.bic).k,
                     **sc, "seconds": time.perf_counter() - t})
        print(f"fitted on {len(idx)} of {n}: global BIC K {rows[-1]['global_bic_k']}, after splits K {sc['k']}, "
              f"homogeneity {sc['homogeneity']:.3f}, completeness {sc['completeness']:.3f}", flush=True)
    write_result("radial_subsample", {"store": Path(args.store).name, "rows": rows})


if __name__ == "__main__":
    main()
