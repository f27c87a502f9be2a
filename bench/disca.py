"""Benchmark the DISCA engine (`make bench-disca`): K estimated (never told), homogeneity,
completeness, V-measure, Hungarian accuracy and seconds per iteration on simulated subtomograms of
five shipped structures at SNR 0.1, tilt ±60°. Writes bench/results/disca.json (or disca_<preset>.json).

Presets:
  reference  5 × 200 subtomograms, the reference YOPO in mixed_bfloat16 (2–3 min per iteration on 2
             CPU cores; for a GPU or a long run), DISCA's defaults
  radial     5 × 100, a narrow YOPO (6 blocks, 16 + 8 per block filters, 256 features, 8 PCA
             dimensions, 2 epochs per iteration), 8 iterations, DISCA's defaults otherwise
  radial-reference  the reference YOPO on 5 × 200, 1 warm-up iteration + 1 E-step
--design reference runs the published E-step instead (with --set learning_rate=1e-5
batchnorm_samples=0: the published design, discaflow.disca.PUBLISHED).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import structure_path, write_result  # noqa: E402

NAMES = ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3")
NARROW = {"blocks": 6, "first_filters": 16, "filter_step": 8, "feature_dim": 256, "pca_components": 8,
          "epochs_per_iteration": 2}
PRESETS = {
    "reference": {"per_class": 200, "params": {"precision": "mixed_bfloat16"}},
    "radial": {"per_class": 100, "params": {**NARROW, "max_iterations": 8}},
    "radial-reference": {"per_class": 200, "params": {"warmup_iterations": 1, "max_iterations": 2}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="reference")
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--design", choices=["discaflow", "reference"], default=None, help="default: DISCA's")
    ap.add_argument("--state-dir", default=None, help="keep (and resume) the run here")
    ap.add_argument("--structures", nargs="+", default=list(NAMES),
                    help="structure names: maps in resources/structures/ or ../shared/data/polnet/maps_10A/ "
                         "(the K-estimation check uses 3, 5 and 8 of them, never telling DISCA how many)")
    ap.add_argument("--tag", default=None, help="suffix of the result file's name (to keep an earlier result of the same settings)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override DISCA parameters of the preset, e.g. --set warmup_iterations=6 pca_components=4")
    args = ap.parse_args()

    from discaflow.disca import Disca
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import simulate_subtomograms

    preset = PRESETS[args.preset]
    tmp = Path(args.state_dir or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    store = tmp / "set.h5"
    if not store.exists():
        structures = [load_structure(structure_path(n), 16.0) for n in args.structures]
        simulate_subtomograms(structures, store, Imaging(16.0, snr=args.snr), per_class=preset["per_class"], seed=7, progress=False)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    params = {**preset["params"], **({"design": args.design} if args.design else {}), **overrides}
    t = time.perf_counter()
    em = Disca(**params).fit(store, tmp / "state")
    seconds = time.perf_counter() - t
    with SubtomogramStore(store) as s:
        truth = s.column("label")
    print(f"{'it':>3} {'K':>3} {'DDBI':>8} {'agree':>7} {'homog':>6} {'compl':>6} {'V':>6} {'acc':>6} {'s':>6}")
    rows = []
    for h in em.history_:
        labels = np.load(tmp / "state" / f"iter_{h['iteration']:03d}" / "labels.npy")
        sc = clustering_scores(truth, labels)
        rows.append({**{k: h[k] for k in ("iteration", "k", "ddbi", "agreement")}, **sc, "seconds": h["seconds"]["total"]})
        agree = "-" if h["agreement"] is None else f"{h['agreement']:.3f}"
        print(f"{h['iteration']:>3} {h['k']:>3} {h['ddbi']:>8.4f} {agree:>7} {sc['homogeneity']:>6.3f} {sc['completeness']:>6.3f} "
              f"{sc['v_measure']:>6.3f} {sc['accuracy']:>6.3f} {h['seconds']['total']:>6.0f}")
    final = clustering_scores(truth, em.labels_)
    print(f"result (iteration {em.best_iteration_}: {'converged' if em.converged_ else 'lowest DDBI'}): K = {final['k']} (true {len(args.structures)}), homogeneity {final['homogeneity']:.3f}, "
          f"completeness {final['completeness']:.3f}, V {final['v_measure']:.3f}, accuracy {final['accuracy']:.3f}; "
          f"{np.mean([r['seconds'] for r in rows]):.0f} s per iteration")
    from baseline import baseline  # the classical comparator, on the same subtomograms and candidates

    with SubtomogramStore(store) as s:
        x = s.read(0, len(s))
    classical = clustering_scores(truth, baseline(x, params.get("k_candidates", list(range(2, 21))),
                                                  params.get("pca_components", 16)))
    print(f"classical baseline (rotation-invariant spectra + PCA + GMM/BIC): K = {classical['k']}, homogeneity "
          f"{classical['homogeneity']:.3f}, completeness {classical['completeness']:.3f}, accuracy {classical['accuracy']:.3f}")
    classical_split = clustering_scores(truth, baseline(x, params.get("k_candidates", list(range(2, 21))), 16, split=True))
    print(f"classical baseline with the recursive split (radial.cluster_radial): K = {classical_split['k']}, homogeneity "
          f"{classical_split['homogeneity']:.3f}, completeness {classical_split['completeness']:.3f}, accuracy {classical_split['accuracy']:.3f}")
    name = "disca" if args.preset == "reference" else f"disca_{args.preset}"
    if args.design:
        name += f"_{args.design}"
    if args.snr != 0.1:
        name += f"_snr{args.snr:g}"
    if overrides:
        name += "_" + "_".join(f"{k}{v}" for k, v in overrides.items())
    if len(args.structures) != len(NAMES):
        name += f"_{len(args.structures)}classes"
    elif list(args.structures) != list(NAMES):
        name += "_" + "-".join(args.structures)
    if args.tag:
        name += f"_{args.tag}"
    write_result(name, {"preset": args.preset, "snr": args.snr, "tilt_deg": 60, "structures": list(args.structures),
                        "per_class": preset["per_class"], "params": json.loads(json.dumps(params)), "design": em.config.design,
                        "result": final, "classical_baseline": classical, "classical_split_baseline": classical_split, "best_iteration": em.best_iteration_, "iterations": rows, "seconds_total": seconds})


if __name__ == "__main__":
    main()
