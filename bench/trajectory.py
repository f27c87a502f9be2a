"""Score every iteration of a finished or running `bench/disca.py` run against the simulated truth.

    python bench/trajectory.py --state-dir DIR [--pair 6utj 3j9i]

DIR is the `--state-dir` given to bench/disca.py (it holds `set.h5` and `state/iter_*/labels.npy`).
Prints per iteration K, DDBI, homogeneity and accuracy over all classes and, with --pair, the
homogeneity of the labels restricted to the subtomograms of those two classes: near 0 means the
clustering does not tell the pair apart at all, 1 that it separates them perfectly.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--pair", nargs=2, metavar="CLASS", help="two class names of the simulation, e.g. 6utj 3j9i")
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
    print(" it   K    DDBI  homog    acc" + ("  pair homog" if args.pair else ""))
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
        print(row)


if __name__ == "__main__":
    main()
