"""A classical comparator for the DISCA benchmarks: rotation-invariant features of each subtomogram
(the log radial power spectrum, the radial density profile about the box centre and the principal
second moments of the particle's core: radial.radial_features), standardised,
PCA, then the same Gaussian-mixture/BIC choice of K as DISCA's E-step (`discaflow.cluster.mixtures.fit_mixtures`);
with --split, each cluster then split recursively in its own descriptor space
(`discaflow.cluster.radial.cluster_radial`, what DISCA's radial warm-up starts from). No network, no
training, no iterations.

Run alone on a labelled store: ``python bench/baseline.py set.h5 [--candidates 2 .. 20]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def baseline(x: np.ndarray, candidates, pca_components: int = 16, seed: int = 0, split: bool = False) -> np.ndarray:
    """Labels of the classical comparator; with ``split``, radial.cluster_radial's (the same
    mixture, then clusters split recursively in their own descriptor space)."""
    from discaflow.cluster.mixtures import fit_mixtures, fit_pca
    from discaflow.cluster.radial import cluster_radial, radial_features, standardised

    f = standardised(radial_features(x))
    if split:
        return cluster_radial(f, candidates, pca_components, seed=seed)
    pca = fit_pca(f, pca_components, seed)
    z = pca.transform(f)
    best, _ = fit_mixtures(z, candidates, seed=seed)
    return best.mixture.predict(z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--candidates", type=int, nargs="+", default=list(range(2, 21)))
    ap.add_argument("--pca-components", type=int, default=16)
    ap.add_argument("--split", action="store_true", help="split clusters recursively (radial.cluster_radial)")
    args = ap.parse_args()
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    with SubtomogramStore(args.store) as s:
        x, y = s.read(0, len(s)), s.column("label")
    sc = clustering_scores(y, baseline(x, args.candidates, args.pca_components, split=args.split))
    print(f"classical baseline: K = {sc['k']} (true {sc['k_true']}), homogeneity {sc['homogeneity']:.3f}, "
          f"completeness {sc['completeness']:.3f}, V {sc['v_measure']:.3f}, accuracy {sc['accuracy']:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
