"""Does a simulated set hold as many distinguishable classes as it has structures
(`python bench/separability.py --structures …`)? Given the true labels: for every pair of classes, the
5-fold cross-validated accuracy of a linear discriminant (scikit-learn LDA) on the standardised radial
descriptors (radial.radial_features: radial density profile, log power spectrum, principal moments) of
their subtomograms. A pair near 0.5 is indistinguishable there; one well below 1 cannot be expected to be
found without labels at this N and SNR. Beside it, without labels: the classical clustering DISCA's
radial warm-up starts from (radial.cluster_radial; estimated K, homogeneity). Seconds; no network.

Same subtomograms as `bench/disca.py` (16 Å voxels, 24³, seed 7, --per-class, --snr). Used to qualify
the K check (bench/README.md): an "8 classes" set whose pairs a supervised classifier cannot separate
does not test whether K is estimated. Writes bench/results/separability_<structures>[_snr<x>].json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_named, write_result  # noqa: E402

SEPARABLE = 0.99  # a pair below this (supervised) is reported as hard


def pairwise_lda(features: np.ndarray, labels: np.ndarray, folds: int = 5) -> np.ndarray:
    """K × K matrix of cross-validated LDA accuracies between every two classes (diagonal 1)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    k = int(labels.max()) + 1
    out = np.ones((k, k))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    for a, b in itertools.combinations(range(k), 2):
        sel = np.isin(labels, [a, b])
        out[a, b] = out[b, a] = cross_val_score(LinearDiscriminantAnalysis(), features[sel], labels[sel], cv=cv).mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structures", nargs="+", required=True)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--candidates", type=int, nargs="+", default=list(range(2, 21)))
    ap.add_argument("--snr-convention", choices=["final_volume", "paper"], default="final_volume")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    args = ap.parse_args()

    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores
    from discaflow.cluster.radial import cluster_radial, store_radial_features
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.subtomograms import simulate_subtomograms

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "set.h5"
        structures = [load_named(n) for n in args.structures]
        simulate_subtomograms(structures, store, Imaging(16.0, snr=args.snr, snr_convention=args.snr_convention), per_class=args.per_class, seed=7, progress=False)
        with SubtomogramStore(store) as s:
            truth = s.column("label")
            features = store_radial_features(s)
    lda = pairwise_lda(features, truth)
    scores = clustering_scores(truth, cluster_radial(features, args.candidates))
    names = args.structures
    width = max(len(n) for n in names)
    print(f"pairwise LDA accuracy (5-fold, given the labels), {args.per_class} per class, SNR {args.snr}:")
    print(" " * (width + 1) + " ".join(f"{n:>{width}}" for n in names))
    for i, n in enumerate(names):
        print(f"{n:>{width}} " + " ".join(f"{lda[i, j]:>{width}.2f}" if i != j else " " * width for j in range(len(names))))
    hard = [{"pair": [names[a], names[b]], "lda_accuracy": float(lda[a, b])}
            for a, b in itertools.combinations(range(len(names)), 2) if lda[a, b] < SEPARABLE]
    print(f"pairs below {SEPARABLE}: " + (", ".join(f"{h['pair'][0]}/{h['pair'][1]} {h['lda_accuracy']:.2f}" for h in hard) or "none"))
    print(f"classical clustering (radial.cluster_radial, no labels): K = {scores['k']} (true {scores['k_true']}), "
          f"homogeneity {scores['homogeneity']:.3f}, completeness {scores['completeness']:.3f}")
    tag = ("-".join(names) + (f"_snr{args.snr:g}" if args.snr != 0.1 else "")
           + ("_paper" if args.snr_convention == "paper" else "") + (f"_{args.tag}" if args.tag else ""))
    write_result(f"separability_{tag}", {"structures": names, "per_class": args.per_class, "snr": args.snr,
                                          "snr_convention": args.snr_convention,
                                          "voxel_size_A": 16.0, "box_vox": 24, "seed": 7,
                                          "pairwise_lda_accuracy": lda.round(4).tolist(), "hard_pairs": hard,
                                          "separable_threshold": SEPARABLE, "classical": scores})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
