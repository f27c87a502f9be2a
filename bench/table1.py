"""The DISCA paper's Table 1 on our simulator (`make bench-table1`): for every SNR × tilt cell, the
estimated K, homogeneity, completeness, V-measure and Hungarian accuracy of three methods on the same
subtomograms — discaflow's DISCA (default settings, never told K), the reference design as a mode of
our code, and a classical comparator — with seconds per EM iteration and to convergence, and the
sample-size curve (the paper's Fig. 3C) at SNR 0.01. Writes bench/results/table1_<preset>.json.

Methods:
  discaflow   our defaults (since 2026-12-02): warm-up on the radial descriptors' clustering, then
              BIC over 2–20 with the radial split and merge tests, learning rate 1e-3 (the preset's),
              BatchNorm recalibration, precision "auto" (bfloat16 on a CPU that has it),
              rotated copies made on the fly by worker threads. Results written before 2026-12-02 (table1_cpu.json)
              had the old defaults: over-partition warm-up, the network's split test, no recalibration
  reference   the published design run by our code: K ∈ {5, 10, 20} by BIC, float32, every rotated
              copy computed up front and held in memory (_common.use_published_data_flow), BatchNorm
              statistics left to their moving averages (`batchnorm_samples` 0), TensorFlow's own
              choice of CPU kernels (the published code does not set TF_ENABLE_ONEDNN_OPTS; stock
              TensorFlow turns oneDNN on only on CPUs with VNNI, AVX512_BF16 or AMX, while discaflow
              asks for it everywhere: discaflow.cpu.prefer_onednn); the network and training settings
              are the preset's, the same as ours, so that only the design and the implementation differ.
              Each DISCA method runs in a child process of its own, so that each imports TensorFlow
              with its own kernel choice (recorded in the result file).
  classical   rotation-invariant spectra + PCA + the same GMM/BIC over 2–20 (bench/baseline.py)
  classical_split  the same, then every cluster split recursively in its own descriptor space
              (discaflow.cluster.radial.cluster_radial; added 2026-12-02)

Presets (the result file records which produced each number):
  paper  5 structures × 400, the reference YOPO, SNR {0.1, 0.03, 0.01, 0.003, 0.001} × ±60°/±40°,
         sample sizes 50–400 per class. For a GPU machine: hours.
  cpu    5 × 100, a narrow YOPO (the `quick` network of bench/disca.py), SNR {0.1, 0.01, 0.001} ×
         ±60°/±40°, learning rate 1e-3, sample sizes 25/50/100, at most 12 iterations. About 1.3 h on 2 cores. (With
         5 × 60 every method failed at SNR 0.1 — DISCA K = 2, homogeneity 0.30; reference design
         K = 5, 0.48; classical K = 3, 0.58: BIC with full covariances needs more points.)

Each cell keeps its simulated store, DISCA states and scores under --work-dir, so an interrupted run
resumes where it stopped (finished cells are not recomputed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, load_named, use_published_data_flow, write_result  # noqa: E402

# Five structures of clearly different size and shape (as the paper chose its five, 0.3–2.3 MDa):
# 70S ribosome (globular, the largest), 26S proteasome (elongated), 6utj (elongated, mid-size),
# 20S proteasome (barrel) and RuBisCO (small, cubic). Integrated density of the 10 Å maps, relative
# to the ribosome: 1.00, 0.56, 0.41, 0.32, 0.13.
STRUCTURES = ("4v4r", "4cr2", "6utj", "3j9i", "1bxn")
METHODS = ("discaflow", "reference", "classical", "classical_split", "ceiling")
QUICK_NET = {"blocks": 6, "first_filters": 16, "filter_step": 8, "feature_dim": 256, "pca_components": 8,
             "learning_rate": 1e-4, "epochs_per_iteration": 2}
PRESETS = {
    "paper": {"per_class": 400, "snrs": [0.1, 0.03, 0.01, 0.003, 0.001], "tilts": [60, 40],
              "sample_sizes": [50, 100, 200, 400], "params": {"max_iterations": 20}},
    # learning rate 1e-3: a narrow network on 500 subtomograms gets ~30 steps per iteration, and at
    # the quick preset's 1e-4 it was still learning when 12 iterations ended. Measured on the SNR 0.1,
    # ±60° cell (K, homogeneity of the result): 1e-4 → 3, 0.515; 3e-4 → 6, 0.755; 1e-3 → 5, 0.764.
    "cpu": {"per_class": 100, "snrs": [0.1, 0.01, 0.001], "tilts": [60, 40], "sample_sizes": [25, 50, 100],
            "params": {**QUICK_NET, "learning_rate": 1e-3, "max_iterations": 12}},
    # The speed cell with the published network (YOPO: 10 blocks of 64, 80, …, 208 filters, 1,024
    # features; DiscaConfig's defaults, learning rate 1e-3 for both methods) instead of the cpu preset's
    # narrow one, on the SNR 0.1, ±60° cell with 50 per class and one epoch per iteration, so that the
    # reference design in float32 (~80 s per iteration on 2 cores) ends in about a quarter of an hour.
    # `--preset speed --methods discaflow reference`.
    "speed": {"per_class": 50, "snrs": [0.1], "tilts": [60], "sample_sizes": [50], "params": {"max_iterations": 12}},
    # Like for like with the paper (issue: like-for-like benchmark): its SNR convention (simulate.imaging,
    # `paper`), its N (5 × 400), its grid, candidates 2–20, the narrow network on a CPU; a supervised
    # ceiling (the same network trained with the labels, bench/ceiling.py) in every cell. One result
    # file per cell (table1_paper-convention_snr<x>_tilt<t>.json); the grid resumes cell by cell.
    "paper-convention": {"per_class": 400, "snrs": [0.1, 0.03, 0.01, 0.003, 0.001], "tilts": [60, 40],
                         "sample_sizes": [], "snr_convention": "paper", "per_cell_results": True,
                         "methods": ("discaflow", "classical_split", "reference", "ceiling"),
                         "params": {**QUICK_NET, "learning_rate": 1e-3, "max_iterations": 12}},
    # the smoke preset uses the maps shipped in resources/structures/ (CI has no ../shared)
    "smoke": {"per_class": 12, "structures": ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3"), "snrs": [0.1], "tilts": [60], "sample_sizes": [12],  # checks the script runs
              "params": {"blocks": 3, "first_filters": 8, "filter_step": 8, "feature_dim": 32, "pca_components": 4,
                         "max_iterations": 2, "warmup_iterations": 1, "k_candidates": [2, 3, 4, 5, 6]}},
}
# discaflow.disca.PUBLISHED but for its learning rate (the preset's is used by both methods), plus the
# reference's precision (its data flow: run_disca's ``published``)
REFERENCE_DESIGN = {"design": "reference", "batchnorm_samples": 0, "train_per_cluster": 0, "fit_sample": 0,
                    "precision": "float32"}
# The paper's Table 1 (DISCA): homogeneity and accuracy (%) per SNR; template matching's homogeneity.
PAPER = {60: {"homogeneity": {0.1: 0.9878, 0.03: 0.9373, 0.01: 0.8746, 0.003: 0.8712, 0.001: 0.8719},
              "accuracy": {0.1: 99.70, 0.03: 97.80, 0.01: 94.80, 0.003: 94.25, 0.001: 94.50}},
         40: {"homogeneity": {0.1: 0.9568, 0.03: 0.8020, 0.01: 0.8344, 0.003: 0.8366, 0.001: 0.8323}}}
PAPER_TEMPLATE_MATCHING = {0.1: 0.70, 0.001: 0.003}


def simulate(path: Path, names, snr: float, tilt: int, per_class: int, snr_convention: str = "final_volume",
             seed: int = 7) -> Path:
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.subtomograms import simulate_subtomograms

    if not path.exists():
        structures = [load_named(n) for n in names]
        simulate_subtomograms(structures, path, Imaging(16.0, snr=snr, tilt_min_deg=-tilt, tilt_max_deg=tilt,
                                                                     snr_convention=snr_convention),
                              per_class=per_class, seed=seed, progress=False)
    return path


def run_disca(store: Path, state_dir: Path, params: dict) -> dict:
    from discaflow.disca import Disca
    from discaflow.disca.mstep import resolve_precision
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    if params.get("design") == "reference":
        use_published_data_flow()
    em = Disca(**params).fit(store, state_dir)
    precision = resolve_precision(em.config.precision, em.config.deterministic)  # what "auto" meant on this machine
    with SubtomogramStore(store) as s:
        truth = s.column("label")
    seconds = [h["seconds"]["total"] for h in em.history_]
    return {**clustering_scores(truth, em.labels_), "iterations": len(em.history_), "converged": em.converged_,
            "best_iteration": em.best_iteration_, "seconds_per_iteration": float(np.mean(seconds)),
            "seconds_total": float(np.sum(seconds)), "k_per_iteration": [h["k"] for h in em.history_],
            "precision": precision}


def tensorflow_default_onednn() -> bool:
    """Whether stock TensorFlow turns its oneDNN kernels on for this CPU: asked of TensorFlow in a child
    process with TF_ENABLE_ONEDNN_OPTS unset."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    probe = "from tensorflow.python.util import _pywrap_util_port as p; print(int(p.IsMklEnabled()))"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "1"


def run_disca_child(store: Path, state_dir: Path, params: dict, onednn: str | None) -> dict:
    """run_disca in a spawned child process whose TensorFlow sees TF_ENABLE_ONEDNN_OPTS = ``onednn``
    (None: unset, so discaflow.cpu.prefer_onednn decides); the child's oneDNN state is returned as
    ``onednn``."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    saved = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    try:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if onednn is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = onednn
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(_run_disca_reporting_onednn, store, state_dir, params).result()
    finally:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if saved is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved


def _run_disca_reporting_onednn(store: Path, state_dir: Path, params: dict) -> dict:
    out = run_disca(store, state_dir, params)
    from joblib.externals.loky import get_reusable_executor
    from tensorflow.python.util import _pywrap_util_port

    # the E-step's worker processes (mixtures.parallel_map) would otherwise keep this child from exiting
    # until their idle timeout: a multiprocessing child joins its own children at exit
    get_reusable_executor().shutdown(wait=True)
    return {**out, "onednn": bool(_pywrap_util_port.IsMklEnabled())}


def run_classical(store: Path, params: dict, split: bool = False) -> dict:
    from baseline import baseline

    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores

    with SubtomogramStore(store) as s:
        x, truth = s.read(0, len(s)), s.column("label")
    t = time.perf_counter()
    # classical: the preset's PCA dimensions (as DISCA's E-step); classical_split: exactly what DISCA's
    # radial warm-up starts from (radial.cluster_radial's defaults)
    labels = baseline(x, params.get("k_candidates", list(range(2, 21))), 16 if split else params.get("pca_components", 16),
                      split=split)
    return {**clustering_scores(truth, labels), "seconds_total": time.perf_counter() - t}


NETWORK_KEYS = ("blocks", "first_filters", "filter_step", "feature_dim")


def run_ceiling_child(store: Path, params: dict) -> dict:
    """bench/ceiling.py's supervised ceiling with the preset's network, in a spawned child (its own
    TensorFlow precision policy)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        network = {("n_blocks" if k == "blocks" else k): params[k] for k in NETWORK_KEYS if k in params}
        return pool.submit(_ceiling, store, network).result()


def _ceiling(store: Path, network: dict) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ceiling import supervised_ceiling

    from discaflow.cpu import cpu_has_native_bfloat16
    from discaflow.io.store import SubtomogramStore

    with SubtomogramStore(store) as s:
        x, y = s.read(), s.column("label")
    precision = "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"
    return supervised_ceiling(x, y, network, epochs=30, seed=0, precision=precision, log=lambda m: None)


def cell(work: Path, name: str, names, snr: float, tilt: int, per_class: int, params: dict, methods,
         snr_convention: str = "final_volume") -> dict:
    """One grid cell: every method on the same simulated store; cached in ``work/name/scores.json``."""
    from discaflow.io.atomic import atomic_path

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "scores.json"
    out = json.loads(cache.read_text()) if cache.exists() else {}
    store = simulate(folder / "set.h5", names, snr, tilt, per_class, snr_convention)
    for method in methods:
        if method in out:
            continue
        t = time.perf_counter()
        if method == "discaflow":
            out[method] = run_disca_child(store, folder / "discaflow", params, None)
        elif method == "reference":
            stock = "1" if tensorflow_default_onednn() else "0"
            out[method] = run_disca_child(store, folder / "reference", {**params, **REFERENCE_DESIGN}, stock)
        elif method == "ceiling":
            out[method] = run_ceiling_child(store, params)
        else:
            out[method] = run_classical(store, params, split=method == "classical_split")
        print(f"   {name} {method}: K = {out[method]['k']}, homogeneity {out[method]['homogeneity']:.3f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        with atomic_path(cache) as tmp:  # a run killed here keeps the previous scores intact
            tmp.write_text(json.dumps(out, indent=1))
    return out


def _acc(r: dict) -> str:
    """Accuracy as the paper reports it: only when K is right."""
    return f"{100 * r['accuracy']:.1f}" if r["k"] == r["k_true"] else "-"


def markdown(result: dict) -> str:
    """The grid of a result file as a Markdown table (for bench/README.md)."""
    methods = [m for m in METHODS if m in result["grid"][0]]
    lines = ["| tilt | SNR | " + " | ".join(f"{m}: K, homog., compl., acc. %" for m in methods) + " | paper: homog. (acc. %) |",
             "|---|---|" + "---|" * len(methods) + "---|"]
    for row in result["grid"]:
        ref = result["paper"].get(str(row["tilt_deg"]), {})
        paper = ref.get("homogeneity", {}).get(str(row["snr"]))
        paper = "-" if paper is None else f"{paper:.3f}"
        acc = ref.get("accuracy", {}).get(str(row["snr"]))
        paper += f" ({acc:.1f})" if acc is not None else ""
        cells = [f"{row[m]['k']}, {row[m]['homogeneity']:.3f}, {row[m]['completeness']:.3f}, {_acc(row[m])}" for m in methods]
        lines.append(f"| ±{row['tilt_deg']}° | {row['snr']} | " + " | ".join(cells) + f" | {paper} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--work-dir", default=None, help="keep (and resume) the runs here (default bench/work/table1_<preset>)")
    ap.add_argument("--skip-sample-size", action="store_true")
    ap.add_argument("--no-reference", action="store_true", help="leave out the reference-design comparator")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                    help="run only these methods (the result file is then named table1_<preset>_<methods>.json)")
    ap.add_argument("--snrs", type=float, nargs="+", default=None, help="only these SNRs of the preset's grid")
    ap.add_argument("--tilts", type=int, nargs="+", default=None, help="only these ± tilt ranges (degrees) of the preset's grid")
    ap.add_argument("--markdown", action="store_true", help="print the preset's last result file as a Markdown table")
    args = ap.parse_args()
    if args.markdown:
        from _common import RESULTS

        print(markdown(json.loads((RESULTS / f"table1_{args.preset}.json").read_text())))
        return
    preset = PRESETS[args.preset]
    work = Path(args.work_dir or REPO / "bench" / "work" / f"table1_{args.preset}")
    params = preset["params"]
    names = preset.get("structures", STRUCTURES)
    methods = args.methods or [m for m in preset.get("methods", METHODS[:4]) if not (args.no_reference and m == "reference")]
    convention = preset.get("snr_convention", "final_volume")
    t0 = time.perf_counter()

    grid = []
    for tilt in args.tilts or preset["tilts"]:
        for snr in args.snrs or preset["snrs"]:
            print(f"cell SNR {snr}, ±{tilt}°, {preset['per_class']} per class ...", flush=True)
            grid.append({"snr": snr, "tilt_deg": tilt, "per_class": preset["per_class"], "snr_convention": convention,
                         **cell(work, f"snr{snr}_tilt{tilt}", names, snr, tilt, preset["per_class"], params, methods,
                                convention)})
            if preset.get("per_cell_results"):
                ref = PAPER.get(tilt, {})
                write_result(f"table1_{args.preset}_snr{snr:g}_tilt{tilt}", {
                    "preset": args.preset, "structures": list(names), "voxel_size_A": 16.0, "box_vox": 24,
                    "snr_convention": convention, "params": params, "reference_design": REFERENCE_DESIGN,
                    "methods": list(methods), "cell": grid[-1],
                    "paper": {"homogeneity": ref.get("homogeneity", {}).get(snr),
                              "accuracy_pct": ref.get("accuracy", {}).get(snr)}})
    samples = []
    if not args.skip_sample_size:
        for n in preset["sample_sizes"]:
            print(f"sample size {n} per class, SNR 0.01, ±60° ...", flush=True)
            samples.append({"snr": 0.01, "tilt_deg": 60, "per_class": n,
                            **cell(work, f"snr0.01_tilt60_n{n}" if n != preset["per_class"] else "snr0.01_tilt60", names,
                                   0.01, 60, n, params, [m for m in methods if m != "reference"])})

    print(f"\nTable 1 ({args.preset} preset, {len(names)} structures: {' '.join(names)}; K never given)")
    head = f"{'tilt':>5} {'SNR':>6} | {'method':<10} {'K':>3} {'homog':>6} {'compl':>6} {'V':>6} {'acc %':>6} {'s/it':>6} {'s total':>8} | paper homog/acc"
    print(head)
    print("-" * len(head))
    for row in grid:
        ref = PAPER.get(row["tilt_deg"], {})
        paper = f"{ref.get('homogeneity', {}).get(row['snr'], float('nan')):.4f}"
        if "accuracy" in ref:
            paper += f" / {ref['accuracy'][row['snr']]:.2f}"
        for j, method in enumerate(methods):
            r = row[method]
            per_it = f"{r['seconds_per_iteration']:.1f}" if "seconds_per_iteration" in r else "-"
            print(f"{('±%d°' % row['tilt_deg']) if j == 0 else '':>5} {row['snr'] if j == 0 else '':>6} | {method:<10} {r['k']:>3} "
                  f"{r['homogeneity']:>6.3f} {r['completeness']:>6.3f} {r['v_measure']:>6.3f} {_acc(r):>6} {per_it:>6} "
                  f"{r['seconds_total']:>8.0f} | {paper if j == 0 else ''}")
    k_right = {m: sum(row[m]["k"] == row[m]["k_true"] for row in grid) for m in methods}
    print("K right: " + ", ".join(f"{m} {k_right[m]} of {len(grid)}" for m in methods) + " (paper: 8 of 10)")
    speed = {}
    if "reference" in methods and "discaflow" in methods:
        per_it = [row["reference"]["seconds_per_iteration"] / row["discaflow"]["seconds_per_iteration"] for row in grid]
        total = [row["reference"]["seconds_total"] / row["discaflow"]["seconds_total"] for row in grid]
        better = sum(row["discaflow"]["homogeneity"] >= row["reference"]["homogeneity"] for row in grid)
        speed = {"per_iteration_ratio_median": float(np.median(per_it)), "per_iteration_ratios": per_it,
                 "to_convergence_ratio_median": float(np.median(total)), "to_convergence_ratios": total,
                 "cells_with_equal_or_better_homogeneity": better}
        print(f"EM speed, reference design / discaflow: per iteration {np.median(per_it):.2f}× (median; "
              f"{min(per_it):.2f}–{max(per_it):.2f}), to the end of the run {np.median(total):.2f}× "
              f"({min(total):.2f}–{max(total):.2f}); discaflow's homogeneity ≥ the reference design's in {better} of {len(grid)} cells")
    if samples:
        print("\nSample size (Fig. 3C), SNR 0.01, ±60°:")
        for row in samples:
            print(f"  {row['per_class']:>4} per class: " + "; ".join(
                f"{m} K = {row[m]['k']}, homogeneity {row[m]['homogeneity']:.3f}, accuracy {100 * row[m]['accuracy']:.1f} %"
                for m in methods if m != "reference"))
    cells = "".join(f"_snr{x:g}" for x in args.snrs or []) + "".join(f"_tilt{t}" for t in args.tilts or [])
    write_result(f"table1_{args.preset}" + ("_" + "_".join(args.methods) if args.methods else "") + cells, {
        "preset": args.preset, "structures": list(names), "voxel_size_A": 16.0, "box_vox": 24, "params": params,
        "reference_design": REFERENCE_DESIGN, "grid": grid, "k_right": k_right, "speed": speed, "sample_size": samples,
        "paper": {str(k): v for k, v in PAPER.items()}, "paper_template_matching_homogeneity": PAPER_TEMPLATE_MATCHING,
        "seconds_total": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
