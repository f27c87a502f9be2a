"""Benchmark a measured DISCA run at scale (`make bench-scale-run`): simulate N subtomograms of the five
shipped structures (SNR 0.1, paper convention, ±60°), run DISCA end to end (E-steps, M-steps on at
most ``train_per_cluster`` per cluster, result export) with the narrow network on this machine, and
record per stage the seconds and the peak RSS, with the accuracy against the truth. Each stage runs in
its own process. Writes bench/results/scale_run_<N>.json; `--project` reads every scale_run_*.json
and projects one EM iteration and a 20-iteration run at 200,000 from the measured per-stage scaling
(a least-squares line in N per features and mixtures; the M-step at its bound, max(k_candidates) ×
train_per_cluster × (1 + rotation_copies) subtomograms, at the slowest measured training rate).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEAK_RSS_MB, RESULTS, run_child, structure_path, write_result  # noqa: E402
from disca import NAMES, NARROW  # noqa: E402

from discaflow.disca.config import DiscaConfig  # noqa: E402

SIMULATE = r"""
import json, sys, time
from discaflow.simulate.imaging import Imaging
from discaflow.simulate.structures import load_structure
from discaflow.simulate.subtomograms import simulate_subtomograms
store, per_class, snr, paths = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
t = time.perf_counter()
simulate_subtomograms([load_structure(p, 16.0) for p in paths], store, Imaging(16.0, snr=snr, snr_convention="paper"),
                      per_class=per_class, seed=7, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

FIT = r"""
import json, logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
from discaflow.disca import Disca
store, state, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
t = time.perf_counter()
em = Disca(**params).fit(store, state)
print(json.dumps({"seconds": time.perf_counter() - t, "history": em.history_}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

EXPORT = r"""
import json, sys, time
import numpy as np
from discaflow.disca import export_result
from discaflow.io.store import SubtomogramStore
from discaflow.metrics import clustering_scores
t = time.perf_counter()
r = export_result(sys.argv[2], sys.argv[1], sys.argv[3])
seconds = time.perf_counter() - t
import pandas as pd
labels = pd.read_csv(sys.argv[3] + "/labels.csv")["rlnClassNumber"].to_numpy()
with SubtomogramStore(sys.argv[1]) as s:
    truth = s.column("label")
print(json.dumps({"seconds": seconds, "peak_rss_mb": PEAK_RSS_MB, **r, **clustering_scores(truth, labels)}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

def summarise(iterations: list[dict]) -> dict:
    """Per-iteration seconds and peak RSS per step: features over every iteration but the first;
    mixtures over the iterations after the warm-up (their E-step fits the candidates and tests splits
    and merges; a warm-up iteration reuses the radial labels); the M-step over the iterations that
    trained. ``fixed_seconds``: iteration 0's mixtures step (the radial descriptors and their
    clustering, once per run)."""
    later = iterations[1:] or iterations
    after = [h for h in iterations if not h["in_warmup"]] or later
    trained = [h for h in iterations if "training" in h["rss_peak_mb"]]
    seconds = {"features": sum(h["seconds"]["features"] for h in later) / len(later),
               "mixtures": sum(h["seconds"]["mixtures"] for h in after) / len(after),
               "training": sum(h["seconds"]["total"] - h["seconds"]["features"] - h["seconds"]["mixtures"]
                               for h in trained) / len(trained)}
    rss = {stage: max(h["rss_peak_mb"][stage] for h in (trained if stage == "training" else iterations))
           for stage in seconds}
    return {"per_iteration": {"seconds": seconds, "rss_peak_mb": rss,
                              "rss_peak_bytes": {stage: int(mb * 2**20) for stage, mb in rss.items()}},
            "seconds_per_iteration": sum(seconds.values()),
            "fixed_seconds": iterations[0]["seconds"]["mixtures"]}


ITERATIONS_PER_RUN = 20  # the projected run: DiscaConfig's max_iterations


def mstep_samples(cluster_sizes: list[int], params: dict) -> int:
    """Subtomograms (rotated copies included) one M-step trains on: at most train_per_cluster of each
    cluster, (1 + rotation_copies) × epochs_per_iteration times."""
    c = DiscaConfig().replace(**{k: v for k, v in params.items() if k in DiscaConfig.__dataclass_fields__})
    per = sum(min(n, c.train_per_cluster) if c.train_per_cluster else n for n in cluster_sizes)
    return per * (1 + c.rotation_copies) * c.epochs_per_iteration


def trained_samples(run: dict) -> float:
    """The mean number of subtomograms a measured M-step of ``run`` trained on."""
    trained = [h for h in run["iterations"] if "training" in h["rss_peak_mb"]]
    return sum(mstep_samples(h["cluster_sizes"], run["params"]) for h in trained) / len(trained)


def project(target: int = 200_000) -> dict:
    """One EM iteration and a run of ITERATIONS_PER_RUN at ``target`` from every scale_run_*.json."""
    import numpy as np

    runs = sorted((json.loads(p.read_text()) for p in RESULTS.glob("scale_run_*.json")), key=lambda r: r["n"])
    runs = [{**r, **summarise(r["iterations"])} for r in runs]
    if len(runs) < 2:
        raise SystemExit("--project needs at least two scale_run_*.json (two sizes)")
    n = np.array([r["n"] for r in runs], float)
    out = {"target_n": target, "from_n": n.astype(int).tolist()}
    for stage in ("features", "mixtures", "training"):
        s = np.array([r["per_iteration"]["seconds"][stage] for r in runs])
        if stage == "training":  # bounded by train_per_cluster × K, not N: the bound at the slowest measured rate
            rate = min(trained_samples(r) / r["per_iteration"]["seconds"]["training"] for r in runs)
            bound = max(DiscaConfig().k_candidates) * mstep_samples([10**9], runs[-1]["params"])
            out.update(training_samples_per_s=rate, training_bound_samples=bound)
            out[stage] = float(bound / rate)
        else:
            slope, icept = np.polyfit(n, s, 1)
            out[stage] = float(slope * target + icept)
        m = np.array([r["per_iteration"]["rss_peak_mb"][stage] for r in runs])
        slope, icept = np.polyfit(n, m, 1)
        out[f"{stage}_rss_mb"] = float(slope * target + icept)
    fixed = np.array([r["fixed_seconds"] for r in runs])  # the radial descriptors' warm-up clustering, once
    slope, icept = np.polyfit(n, fixed, 1)
    out["once_seconds"] = float(slope * target + icept)
    out["seconds_per_iteration"] = out["features"] + out["mixtures"] + out["training"]
    out["hours_per_run"] = (ITERATIONS_PER_RUN * out["seconds_per_iteration"] + out["once_seconds"]) / 3600
    out["rss_peak_mb"] = max(out[f"{s}_rss_mb"] for s in ("features", "mixtures", "training"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="subtomograms (split evenly over the structures)")
    ap.add_argument("--max-iterations", type=int, default=6)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override DISCA parameters")
    ap.add_argument("--work-dir", default=None, help="keep the store and state here (default: a temporary directory)")
    ap.add_argument("--project", action="store_true", help="only project to 200,000 from the scale_run_*.json")
    ap.add_argument("--result", default=None,
                    help="result name (default scale_run_<N>; another name keeps the run out of the projection)")
    args = ap.parse_args()
    if args.project:
        fig = project()
        print(json.dumps(fig, indent=2))
        write_result("scale_projection", fig)
        return
    work = Path(args.work_dir or tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    store, per_class = work / "set.h5", args.n // len(NAMES)
    params = {**NARROW, "max_iterations": args.max_iterations,
              **{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}}
    fig = {"n": per_class * len(NAMES), "structures": list(NAMES), "snr": 0.1, "snr_convention": "paper", "tilt_deg": 60,
           "params": params}
    if not store.exists():
        print(f"1. simulating {fig['n']} subtomograms ...", flush=True)
        fig["simulate"] = run_child(SIMULATE, store, per_class, 0.1, *[structure_path(n) for n in NAMES])
        print(f"   {fig['simulate']['seconds']:.0f} s, peak RSS {fig['simulate']['peak_rss_mb']:.0f} MB", flush=True)
    print(f"2. DISCA ({json.dumps(params)}) ...", flush=True)
    fit = run_child(FIT, store, work / "state", json.dumps(params))
    hist = fit.pop("history")
    fig["disca"] = fit
    fig["iterations"] = [{k: h[k] for k in ("iteration", "k", "in_warmup", "seconds", "rss_peak_mb", "cluster_sizes")} for h in hist]
    fig.update(summarise(fig["iterations"]))
    per = fig["per_iteration"]
    print(f"   {fit['seconds']:.0f} s for {len(hist)} iterations; per iteration {json.dumps(per)}", flush=True)
    print("3. exporting the result ...", flush=True)
    fig["export"] = run_child(EXPORT, store, work / "state", work / "out")
    # the DISCA process resets its peak between steps (state.json's rss_peak_mb): its peak is the steps' largest
    fig["rss_peak_mb"] = {"disca": max(per["rss_peak_mb"].values()), "export": fig["export"]["peak_rss_mb"],
                          **({"simulate": fig["simulate"]["peak_rss_mb"]} if "simulate" in fig else {})}
    e = fig["export"]
    print(f"   {e['seconds']:.0f} s; K = {e['k']}, homogeneity {e['homogeneity']:.3f}, completeness {e['completeness']:.3f}")
    write_result(args.result or f"scale_run_{fig['n']}", fig)


if __name__ == "__main__":
    main()
