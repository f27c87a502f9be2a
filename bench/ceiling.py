"""How separable is the DISCA benchmark's data at all (`make bench-ceiling`)? YOPO trained *with* the
true labels on 80 % of the set and scored on the held-out 20 %: an upper bound, for this network and
these imaging conditions, on what an unsupervised method can reach. Same subtomograms as
`bench/disca.py` (five shipped structures, 16 Å voxels, 24³, seed 7). Writes
bench/results/ceiling_<arch>[_<structures>].json.

Training: cross-entropy, Adam (learning rate 1e-3), batch 64; each epoch sees every training
subtomogram once as it is and once under a fresh uniformly random proper rotation with noise-filled
corners (the data of a DISCA M-step). Before scoring, the BatchNorm statistics are recomputed from
the training subtomograms (model.recalibrate_batchnorm, as DISCA does after each M-step); the
accuracy with the moving averages as training left them is printed beside it. The score is that of
the last epoch: the held-out set is never used to choose anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_named, write_result  # noqa: E402

NAMES = ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3")  # as bench/disca.py
ARCHES = {"narrow": {"n_blocks": 6, "first_filters": 16, "filter_step": 8, "feature_dim": 256},  # bench/disca.py quick
          "reference": {}}
WORK = Path(__file__).resolve().parent / "work" / "ceiling"


def supervised_ceiling(x: np.ndarray, y: np.ndarray, network: dict, epochs: int = 30, seed: int = 0,
                       precision: str = "mixed_bfloat16", log=print) -> dict:
    """Train the YOPO of ``network`` (model.build_feature_model keywords) with the labels ``y`` on a
    stratified 80 % of ``x`` and score the held-out 20 % after the last epoch (see the module docstring)."""
    import keras
    from sklearn.metrics import confusion_matrix

    from discaflow import model as M
    from discaflow.augment import random_rotation_batch
    from discaflow.metrics import clustering_scores

    x = x.astype(np.float32)
    y = y.astype(int)
    k = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: int(round(0.2 * np.sum(y == c)))] for c in range(k)])
    train = np.setdiff1d(np.arange(len(y)), test)
    onehot = np.eye(k, dtype=np.float32)[y]

    keras.utils.set_random_seed(seed)
    M.set_precision(precision)
    features = M.build_feature_model(x.shape[1], seed=seed, **network)
    net = M.build_classifier(features, M.build_head(features.output_shape[-1], k, seed=seed))
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")

    curve = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        rotated = random_rotation_batch(x[train], rng)
        hist = net.fit(np.concatenate([x[train], rotated])[..., None], np.concatenate([onehot[train], onehot[train]]),
                       batch_size=64, epochs=1, verbose=0, shuffle=True)
        if epoch % 5 == 0 or epoch == epochs:
            # held-out accuracy with the BatchNorm moving averages as training left them, and with
            # statistics recomputed from the training subtomograms (what the DISCA E-step uses)
            moving = float(np.mean(net.predict(x[test][..., None], batch_size=128, verbose=0).argmax(axis=1) == y[test]))
            kept = [v.numpy().copy() for v in features.non_trainable_variables]
            M.recalibrate_batchnorm(features, (x[train[i: i + 64]] for i in range(0, len(train), 64)))
            pred = net.predict(x[test][..., None], batch_size=128, verbose=0).argmax(axis=1)
            for v, value in zip(features.non_trainable_variables, kept):
                v.assign(value)
            acc = float(np.mean(pred == y[test]))
            curve.append({"epoch": epoch, "train_loss": float(hist.history["loss"][-1]), "test_accuracy": acc,
                          "test_accuracy_moving_batchnorm": moving, "seconds": time.perf_counter() - t0})
            log(f"epoch {epoch:3d}  loss {hist.history['loss'][-1]:.3f}  held-out accuracy {acc:.3f} "
                f"(BatchNorm moving averages: {moving:.3f})  ({time.perf_counter() - t0:.0f} s)")
    scores = clustering_scores(y[test], pred)
    return {"k": k, "k_true": k, **scores, "accuracy": float(np.mean(pred == y[test])), "train": int(len(train)),
            "held_out": int(len(test)), "epochs": epochs, "precision": precision,
            "confusion": confusion_matrix(y[test], pred, labels=list(range(k))).tolist(), "curve": curve,
            "seconds_total": time.perf_counter() - t0}


def template_matching_ceiling(x: np.ndarray, y: np.ndarray, bank: np.ndarray, bank_y: np.ndarray) -> dict:
    """What the data carry, independent of any network: each subtomogram of ``x`` gets the class of the
    bank member it correlates with best (normalised cross-correlation, no shift search), the bank being
    noise-free copies of every class simulated with the same imaging in random orientations (an oracle:
    it knows the true structures). Accuracy over all of ``x``."""
    from sklearn.metrics import confusion_matrix

    from discaflow.io.store import normalize_subtomograms
    from discaflow.metrics import clustering_scores

    def flat(a):  # zero mean, unit variance: the dot product is the correlation × voxels
        return normalize_subtomograms(a).reshape(len(a), -1)

    y, bank_y = np.asarray(y, int), np.asarray(bank_y, int)
    k = int(y.max()) + 1
    b = flat(bank)
    best = np.full((len(x), k), -np.inf, np.float32)
    for i in range(0, len(x), 256):
        c = flat(x[i: i + 256]) @ b.T
        for cls in range(k):
            best[i: i + 256, cls] = c[:, bank_y == cls].max(axis=1)
    pred = best.argmax(axis=1)
    return {"k": k, "k_true": k, **clustering_scores(y, pred), "accuracy": float(np.mean(pred == y)),
            "bank_per_class": int(np.sum(bank_y == 0)),
            "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(ARCHES), default="narrow")
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--tilt", type=float, default=60.0, help="± tilt range, degrees")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--structures", nargs="+", default=list(NAMES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="mixed_bfloat16")
    ap.add_argument("--snr-convention", choices=["final_volume", "paper"], default="final_volume")
    args = ap.parse_args()

    from discaflow.io.store import SubtomogramStore
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.subtomograms import simulate_subtomograms

    WORK.mkdir(parents=True, exist_ok=True)
    conv = "" if args.snr_convention == "final_volume" else "_paper"
    store = WORK / f"set_{'-'.join(args.structures)}_{args.per_class}_snr{args.snr:g}_tilt{args.tilt:g}{conv}.h5"
    if not store.exists():
        structures = [load_named(n) for n in args.structures]
        simulate_subtomograms(structures, store, Imaging(16.0, snr=args.snr, tilt_min_deg=-args.tilt, tilt_max_deg=args.tilt,
                                                                  snr_convention=args.snr_convention),
                              per_class=args.per_class, seed=7, progress=False)
    with SubtomogramStore(store) as s:
        x = s.read().astype(np.float32)
        y = s.column("label").astype(int)
    r = supervised_ceiling(x, y, ARCHES[args.arch], args.epochs, args.seed, args.precision, log=lambda m: print(m, flush=True))
    cm = r["confusion"]
    print(f"\nsupervised ceiling ({args.arch} YOPO, {r['train']} training / {r['held_out']} held-out subtomograms, "
          f"SNR {args.snr:g}, ±{args.tilt:g}°):")
    print(f"  accuracy {r['accuracy']:.3f}  homogeneity {r['homogeneity']:.3f}  completeness {r['completeness']:.3f}")
    print("  confusion (rows true, columns predicted; " + ", ".join(args.structures) + "):")
    for name, row in zip(args.structures, cm):
        print(f"    {name:>6s} " + " ".join(f"{v:4d}" for v in row))
    name = f"ceiling_{args.arch}" + ("" if list(args.structures) == list(NAMES) else "_" + "-".join(args.structures)) + conv
    write_result(name, {
        "arch": args.arch, "structures": args.structures, "per_class": args.per_class, "snr": args.snr, "tilt_deg": args.tilt,
        "voxel_size_A": 16.0, "snr_convention": args.snr_convention, **r})


if __name__ == "__main__":
    main()
