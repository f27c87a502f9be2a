"""Benchmark the DISCA engine (`make bench-disca`): K estimated (never told), homogeneity,
completeness, V-measure, Hungarian accuracy and seconds per iteration on simulated subtomograms of
five shipped structures at SNR 0.1, tilt ±60°. Writes bench/results/disca.json (or disca_<preset>.json).

Presets:
  reference  the issue's setting: 5 × 200 subtomograms, the reference YOPO in mixed_bfloat16 (about
             2–3 min per iteration on 2 CPU cores; for a GPU or a long run), DISCA's default settings
  quick      5 × 100 subtomograms, a narrow YOPO (6 blocks, 16 + 8 per block filters, 256 features),
             learning rate 1e-4, with the DISCA defaults before 2026-12-02 (PREVIOUS_DEFAULTS: the
             over-partition start), as every quick row of bench/README.md ran
  radial     the quick set and network with k_strategy "radial", learning rate 1e-3, BatchNorm
             recalibration, the radial split test instead of the network's, no merge test, 8 iterations,
             precision auto; with --set radial_merge=true exactly the defaults since 2026-12-02
  radial-reference  the radial preset's start with the reference YOPO on 5 × 200, the radial merge
             test on, 1 warm-up iteration + 1 E-step

--previous-defaults runs any preset with PREVIOUS_DEFAULTS under the preset's own parameters: the rows
of bench/README.md dated before the defaults changed (2026-12-02, the K check) ran that way.
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
# DISCA's defaults until 2026-12-02 where they differ from today's (em.DiscaParams)
PREVIOUS_DEFAULTS = {"k_strategy": "overpartition", "split_test": True, "radial_split": False, "radial_merge": False,
                     "batchnorm_samples": 0, "learning_rate": 1e-5}
PRESETS = {
    "reference": {"per_class": 200, "params": {"precision": "mixed_bfloat16"}},
    "quick": {"per_class": 100, "params": {"n_blocks": 6, "first_filters": 16, "filter_step": 8, "feature_dim": 256,
                                           "pca_components": 8, "learning_rate": 1e-4, "epochs_per_iteration": 2,
                                           "max_iterations": 12, "precision": "mixed_bfloat16"}},
}
PRESETS["quick"]["params"] = {**PREVIOUS_DEFAULTS, **PRESETS["quick"]["params"]}
# the best configuration measured on the Table 1 set (bench/README.md): the quick network and set,
# warm-up on the classical radial clustering, learning rate 1e-3 with BatchNorm recalibration (so that
# the warm-up labels are learnt and the E-step sees the current weights), the radial split test and
# not the network's (which cut the elongated 6utj in two by orientation: K = 6, homogeneity 0.968 with
# it; K = 5, 1.000 without, 2026-12-02)
PRESETS["radial"] = {"per_class": 100, "params": {
    **{k: v for k, v in PRESETS["quick"]["params"].items() if k != "precision"}, "precision": "auto",
    "k_strategy": "radial", "learning_rate": 1e-3, "batchnorm_samples": 1024, "radial_split": True,
    "radial_split_dims": 24, "split_test": False, "radial_merge": False, "warmup_iterations": 3, "max_iterations": 8}}
# the same start with the reference network on the 5 × 200 (Table 1 set), and the radial merge
# test (the reference network's features split 6utj and the 20S by orientation: K = 7, homogeneity
# 0.993 without it; K = 5, 0.992 with it, 2026-12-02, AVX2 CPU, float32, ~50 min); one warm-up
# iteration and one E-step (each iteration of the reference network costs ~25 min in float32 there)
PRESETS["radial-reference"] = {"per_class": 200, "params": {
    "precision": "auto", "k_strategy": "radial", "learning_rate": 1e-3, "batchnorm_samples": 1024,
    "radial_split": True, "split_test": False, "radial_merge": True, "warmup_iterations": 1, "max_iterations": 2}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="reference")
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--k-strategy", default=None, help="default: the preset's, else DISCA's default")
    ap.add_argument("--previous-defaults", action="store_true",
                    help="DISCA's defaults before 2026-12-02 under the preset's parameters (PREVIOUS_DEFAULTS)")
    ap.add_argument("--state-dir", default=None, help="keep (and resume) the run here")
    ap.add_argument("--structures", nargs="+", default=list(NAMES),
                    help="structure names: maps in resources/structures/ or ../shared/data/polnet/maps_10A/ "
                         "(the K-estimation check uses 3, 5 and 8 of them, never telling DISCA how many)")
    ap.add_argument("--tag", default=None, help="suffix of the result file's name (to keep an earlier result of the same settings)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override DISCA parameters of the preset, e.g. --set warmup_iterations=6 pca_components=4")
    args = ap.parse_args()

    from discaflow.em import DiscaEM
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
    params = {**(PREVIOUS_DEFAULTS if args.previous_defaults else {}), **preset["params"],
              **({"k_strategy": args.k_strategy} if args.k_strategy else {}), **overrides}
    t = time.perf_counter()
    em = DiscaEM(**params).fit(store, tmp / "state")
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
    if args.previous_defaults:
        name += "_previous_defaults"
    if args.k_strategy:
        name += f"_{args.k_strategy}"
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
                        "per_class": preset["per_class"], "params": json.loads(json.dumps(params)), "k_strategy": em.params.k_strategy,
                        "result": final, "classical_baseline": classical, "classical_split_baseline": classical_split, "best_iteration": em.best_iteration_, "iterations": rows, "seconds_total": seconds})


if __name__ == "__main__":
    main()
