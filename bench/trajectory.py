"""Score every iteration of a finished or running `bench/disca.py` run against the simulated truth.

    python bench/trajectory.py --state-dir DIR [--pair 6utj 3j9i [--probe]]

DIR is the `--state-dir` given to bench/disca.py (it holds `set.h5` and `state/iter_*/labels.npy`).
Prints per iteration K, DDBI, homogeneity and accuracy over all classes and, with --pair, the
homogeneity of the labels restricted to the subtomograms of those two classes: near 0 means the
clustering does not tell the pair apart at all, 1 that it separates them perfectly. --probe adds a
linear probe: the 5-fold cross-validated accuracy of a logistic regression that is *given* the pair's
labels, on the features of that iteration's network (init = the untrained one). A probe well above 0.5
with a pair homogeneity near 0 means the features hold the distinction but not as a direction the
mixture can find.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import homogeneity_score

from discaflow.io.store import SubtomogramStore
from discaflow.metrics import clustering_scores


def linear_probe(model_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """5-fold cross-validated accuracy of a logistic regression on the saved network's features of x."""
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from discaflow.model import load_model, predict_batch

    classifier = load_model(model_path)
    features = next(layer for layer in classifier.layers if isinstance(layer, keras.Model))  # the YOPO feature model
    f = np.concatenate([predict_batch(features, x[i: i + 100], pad_to=100) for i in range(0, len(x), 100)])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return float(cross_val_score(probe, f, y, cv=5).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--pair", nargs=2, metavar="CLASS", help="two class names of the simulation, e.g. 6utj 3j9i")
    ap.add_argument("--probe", action="store_true", help="with --pair: linear-probe accuracy of each saved network")
    args = ap.parse_args()
    with SubtomogramStore(args.state_dir / "set.h5") as store:
        truth = store.column("label")
        names = list(store.class_names)
    if truth is None:
        sys.exit(f"{args.state_dir / 'set.h5'}: no 'label' column — score only simulated sets")
    pair_mask = None
    if args.pair:
        unknown = [n for n in args.pair if n not in names]
        if unknown:
            sys.exit(f"{args.state_dir / 'set.h5'}: no class {unknown[0]!r}; the classes are {', '.join(names)}")
        pair_mask = np.isin(truth, [names.index(n) for n in args.pair])
    iterations = sorted((args.state_dir / "state").glob("iter_*"))
    if not iterations:
        sys.exit(f"{args.state_dir / 'state'}: no iterations yet")
    if args.probe and not args.pair:
        ap.error("--probe needs --pair")
    pair_x = None
    if args.probe:
        with SubtomogramStore(args.state_dir / "set.h5") as store:
            pair_x = store.read(0, len(store))[pair_mask]
        print(f"init: linear probe {linear_probe(args.state_dir / 'state' / 'init' / 'model.keras', pair_x, truth[pair_mask]):.3f}")
    print(" it   K    DDBI  homog    acc" + ("  pair homog" if args.pair else "") + ("  probe" if args.probe else ""))
    for it in iterations:
        if not (it / "labels.npy").exists():
            continue
        labels = np.load(it / "labels.npy")
        state = json.loads((it / "state.json").read_text())
        scores = clustering_scores(truth, labels)
        row = (f"{int(it.name.split('_')[1]):3d} {scores['k']:3d} {state['ddbi']:7.4f}"
               f"  {scores['homogeneity']:.3f}  {scores['accuracy']:.3f}")
        if pair_mask is not None:
            row += f"  {homogeneity_score(truth[pair_mask], labels[pair_mask]):10.3f}"
        if pair_x is not None and (it / "model.keras").exists():  # the last iteration keeps no model
            row += f"  {linear_probe(it / 'model.keras', pair_x, truth[pair_mask]):.3f}"
        print(row)


if __name__ == "__main__":
    main()
