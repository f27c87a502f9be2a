"""Invariance benchmark (the DISCA paper's Fig. 3B): how much do YOPO features of one subtomogram move
under random rotations and translations, compared with the distance between classes?

For ``--per-class`` subtomograms of every class of a labelled store, ``--copies`` copies each under a
uniformly random proper rotation (corners filled with N(0, 1), as in training) and a random shift of
up to ``--max-shift`` voxels. Ratio = mean distance of a copy's features to the centroid of its own
copies (spread) / mean distance between the class centroids of the originals. Lower is more
invariant. Reported for the trained network of a DISCA state directory and for the same architecture
untrained (its initial weights), in the feature space the mixtures see (the run's PCA of the
original features) and in the raw 1,024-d space.

``python bench/invariance.py --state-dir /tmp/ks_3`` (a directory written by bench/disca.py: ``set.h5``
and ``state/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def _copies(x: np.ndarray, n: int, max_shift: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    from discaflow.augment import rotate_with_noise_fill
    from discaflow.geometry import random_rotations

    rots = random_rotations(n, rng).as_matrix()
    out = np.empty((n, *x.shape), np.float32)
    for i in range(n):
        shift = rng.uniform(-1, 1, 3)
        shift *= max_shift * rng.uniform() ** (1 / 3) / max(np.linalg.norm(shift), 1e-9)
        moved = ndimage.shift(x, shift, order=1, mode="constant", cval=np.nan)
        moved[np.isnan(moved)] = rng.standard_normal(int(np.isnan(moved).sum()))
        out[i], _ = rotate_with_noise_fill(moved, rots[i], rng)
    return out


def _ratio(features: np.ndarray, copy_of: np.ndarray, cls: np.ndarray, originals: np.ndarray) -> float:
    """``cls``: class of each original (rows of ``originals``)."""
    spread = []
    for j in np.unique(copy_of):
        f = features[copy_of == j]
        spread.append(np.linalg.norm(f - f.mean(0), axis=1).mean())
    centroids = np.array([originals[cls == c].mean(0) for c in np.unique(cls)])
    d = np.linalg.norm(centroids[:, None] - centroids[None], axis=2)
    between = d[np.triu_indices(len(centroids), 1)].mean()
    return float(np.mean(spread) / between)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", required=True, help="a bench/disca.py directory (set.h5 + state/)")
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--copies", type=int, default=200)
    ap.add_argument("--max-shift", type=float, default=2.0, help="voxels")
    args = ap.parse_args()

    from discaflow.disca import Disca
    from discaflow.disca.checkpoint import iteration_dir, model_dir
    from discaflow.disca.mstep import resolve_precision
    from discaflow.io.store import SubtomogramStore
    from discaflow.model import load_model, predict_batch, set_precision

    root = Path(args.state_dir)
    with SubtomogramStore(root / "set.h5") as s:
        labels = s.column("label")
        rng = np.random.default_rng(0)
        picks = np.concatenate([rng.choice(np.flatnonzero(labels == c), args.per_class, replace=False)
                                for c in np.unique(labels)])
        originals = s.take(picks)
    em = Disca.load(root / "state")
    params = json.loads((root / "state" / "params.json").read_text())["params"]
    set_precision(resolve_precision(params["precision"]))  # what the run itself used on this machine
    best = em.best_iteration_
    models = {"trained": model_dir(root / "state", best) / "model.keras",
              "untrained": root / "state" / "init" / "model.keras"}
    with np.load(iteration_dir(root / "state", best) / "mixture.npz") as m:
        pca_mean, pca_components = m["pca_mean"], m["pca_components"]
    copies = np.concatenate([_copies(x, args.copies, args.max_shift, rng) for x in originals])
    copy_of = np.repeat(np.arange(len(originals)), args.copies)
    cls = labels[picks]
    fig = {"state_dir": str(root), "best_iteration": best, "per_class": args.per_class, "copies": args.copies,
           "max_shift_vox": args.max_shift}
    for name, path in models.items():
        net = load_model(path).get_layer("yopo_features")

        def feats(v):  # DISCA's own inference path: Keras's compiled predict step
            return np.concatenate([predict_batch(net, v[i: i + 128], pad_to=128) for i in range(0, len(v), 128)])

        f_copies, f_orig = feats(copies), feats(originals)
        raw = _ratio(f_copies, copy_of, cls, f_orig)
        if name == "trained":
            z_copies, z_orig = (f_copies - pca_mean) @ pca_components.T, (f_orig - pca_mean) @ pca_components.T
        else:  # the untrained network's own PCA, fitted on its features of the originals and copies
            from discaflow.cluster.mixtures import fit_pca

            pca = fit_pca(np.vstack([f_orig, f_copies]), pca_components.shape[0])
            z_copies, z_orig = pca.transform(f_copies), pca.transform(f_orig)
        fig[name] = {"ratio_raw": raw, "ratio_pca": _ratio(z_copies, copy_of, cls, z_orig)}
        print(f"{name:>9}: spread of copies / distance between classes = {fig[name]['ratio_pca']:.3f} in the PCA space, "
              f"{raw:.3f} in the raw features")
    write_result(f"invariance_{root.name}", fig)


if __name__ == "__main__":
    main()
