"""The demo's classes against its ground truth (`make bench-demo-truth`, after `make demo`).

Each pick is matched to the nearest simulated particle of its tomogram within a quarter box (unbinned
pixels; metrics.true_classes_of_particles); a pick with none is junk (membrane, blobs, noise). Over the
complex picks: K, homogeneity, completeness and the class × structure table; over the junk picks: how
many sit in a complex class (a class whose majority of picks are complexes). Writes
bench/results/demo_truth.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402


def evaluate(store_path: Path, labels_csv: Path, truth_stars: list[Path]) -> dict:
    from discaflow.io.star import read_star
    from discaflow.io.store import SubtomogramStore
    from discaflow.io.tables import read_table
    from discaflow.metrics import clustering_scores, true_classes_of_particles

    with SubtomogramStore(store_path) as store:
        names = [store.tomogram_names[t] for t in store.column("tomogram")]
        coords = store.column("coords")
        radius = store.box_vox * store.binning / 4
    tables = {p.name.removesuffix("_particles.star"): read_star(p) for p in truth_stars}
    structures = sorted({(int(c), n) for t in tables.values() for c, n in zip(t["rlnClassNumber"], t["dfClassName"])})
    structure_names = [n for _, n in structures]
    truth = true_classes_of_particles(coords, names, tables, radius)
    table = read_table(labels_csv)
    labels = np.full(len(truth), -1, np.int64)
    labels[table["dfParticleIndex"].to_numpy(np.int64)] = table["rlnClassNumber"].to_numpy(np.int64)
    complexes = truth >= 0
    classes = sorted(set(labels[labels >= 0].tolist()))
    counts = {int(c): {**{structure_names[s]: int(np.sum((labels == c) & (truth == s))) for s in range(len(structure_names))},
                       "junk": int(np.sum((labels == c) & ~complexes))} for c in classes}
    complex_classes = [c for c in classes if sum(v for k, v in counts[c].items() if k != "junk") > counts[c]["junk"]]
    junk_in_complex = int(np.sum(~complexes & np.isin(labels, complex_classes)))
    scores = clustering_scores(truth[complexes], labels[complexes])
    return {"picks": int(len(truth)), "complex_picks": int(complexes.sum()), "junk_picks": int((~complexes).sum()),
            "k": len(classes), "complex_classes": complex_classes, "structures": structure_names,
            "complex_picks_scores": scores, "junk_in_complex_classes": junk_in_complex, "class_table": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(REPO / "results"), help="the demo's results folder")
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--simulation", default="demo")
    args = ap.parse_args()
    res = Path(args.results)
    stars = sorted((res / "simulated" / args.simulation / "tomograms").glob("*_particles.star"))
    if not stars:
        raise SystemExit(f"{res}: no simulated ground truth; run `make demo` first")
    out = evaluate(res / args.dataset / "subtomograms.h5", res / args.dataset / "disca" / "labels.csv", stars)
    s = out["complex_picks_scores"]
    print(f"{out['picks']} picks ({out['complex_picks']} of complexes, {out['junk_picks']} junk), K = {out['k']}")
    print(f"complex picks: homogeneity {s['homogeneity']:.3f}, completeness {s['completeness']:.3f}; "
          f"junk picks in complex classes: {out['junk_in_complex_classes']}")
    print("class  " + " ".join(f"{n:>14}" for n in out["structures"]) + f" {'junk':>6}")
    for c, row in out["class_table"].items():
        print(f"{c:>5}  " + " ".join(f"{row[n]:>14}" for n in out["structures"]) + f" {row['junk']:>6}")
    write_result("demo_truth", {"dataset": args.dataset, "command": "make demo && make bench-demo-truth", **out})


if __name__ == "__main__":
    main()
