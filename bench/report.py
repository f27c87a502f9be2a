"""Write bench/README.md from bench/results/*.json (`make bench-report`; `--check` exits 1 when the
page is not what the result files give, as CI runs it). One table per benchmark, the newest result per
row, each row with its date, commit and machine; the page is generated, never edited by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS, PAGE = HERE / "results", HERE / "README.md"
GRID_METHODS = (("discaflow", "discaflow"), ("classical_split", "classical + split"), ("reference", "reference design"),
                ("ceiling", "supervised ceiling"))


def _load() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def _provenance(r: dict) -> str:
    m = r.get("machine", {})
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return f"{r.get('date', '?')[:10]} | {r.get('commit', '?')} | {m.get('cpu', '?')}, {m.get('cores', '?')} cores{gpu}"


def _method(r: dict | None) -> str:
    if not r:
        return "not run"
    return f"K {r['k']}, {r['homogeneity']:.3f}"


def table1(results: dict) -> list[str]:
    cells = [r for name, r in results.items() if name.startswith("table1_paper-convention_snr")]
    out = ["## Table 1 like for like (paper SNR convention, 5 × 400)", "",
           "`make bench-table1-paper-convention`: the paper's five-class set (4v4r 4cr2 6utj 3j9i 1bxn), 16 Å, "
           "24³, 400 per class, its SNR convention and grid, candidates 2–20 (never told K), narrow network. "
           "Each entry: estimated K, homogeneity. The ceiling is the same network trained with the labels "
           "(80/20, held-out 20 %).", ""]
    header = "| tilt | SNR | " + " | ".join(label for _, label in GRID_METHODS) + " | paper | date | commit | machine |"
    out += [header, "|" + "---|" * (header.count("|") - 1)]
    order = sorted(cells, key=lambda r: (-r["cell"]["tilt_deg"], -r["cell"]["snr"]))
    for r in order:
        c = r["cell"]
        paper = r["paper"]["homogeneity"]
        out.append(f"| ±{c['tilt_deg']}° | {c['snr']:g} | " + " | ".join(_method(c.get(m)) for m, _ in GRID_METHODS)
                   + f" | {'-' if paper is None else f'{paper:.3f}'} | {_provenance(r)} |")
    missing = 10 - len(order)
    if missing:
        out += ["", f"{missing} of the 10 cells not run yet (the script resumes cell by cell)."]
    return out + [""]


def shape(results: dict) -> list[str]:
    rows = [r for name, r in results.items() if name.startswith("shape_snr")]
    out = ["## Shape, not size (paper SNR convention, 6 × 200)", "",
           "`make bench-shape`: three groups, each a map and its enantiomer (4cr2, 4v4r, 1u6g; the density reflected "
           "through a plane through its centre: the same size, radial profile, spectrum and moments, the other hand). "
           "Within a group the radial descriptors cannot tell the classes apart given the labels (LDA). The set qualifies "
           "only if the supervised ceiling (the narrow network trained with the labels, 80/20) also reaches 0.95 at SNR 0.1. "
           "The template-matching oracle classifies every subtomogram by its best correlation with 3,000 noise-free copies "
           "per class in random orientations: what the data carry, without any network. The real same-size groups in "
           "../shared/data measured LDA ≥ 0.92, too separable to qualify "
           "(`bench/separability.py --snr-convention paper --per-class 200`: tomoDRGN's two 50S assembly states "
           "0.92, polnet's mid-size complexes 0.93–1.00, large ones ≥ 0.99; the separability_*_paper files below).", "",
           "| SNR | within-group LDA (max) | classical + split | supervised ceiling (accuracy) | template-matching oracle (accuracy) | discaflow | qualifies | date | commit | machine |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["snr"]):
        m = r["methods"]
        out.append(f"| {r['snr']:g} | {max(r['lda']['within_group'].values()):.2f} | {_method(m.get('classical_split'))} | "
                   f"{_method(m.get('ceiling'))}" + (f" ({m['ceiling']['accuracy']:.2f})" if "ceiling" in m else "")
                   + f" | {_method(m.get('oracle'))}" + (f" ({m['oracle']['accuracy']:.2f})" if "oracle" in m else "")
                   + f" | {_method(m.get('discaflow'))} | {'yes' if r.get('qualifies') else 'no'} | {_provenance(r)} |")
    return out + [""]


def simulate(results: dict) -> list[str]:
    r = results.get("simulate")
    if not r or "snr_conventions" not in r:
        return []
    out = ["## Simulator: what the nominal SNR means", "",
           "`make bench-simulate`: final-volume SNR per unit of nominal SNR (24³ box; full band and within the "
           "paper convention's band threshold, from the filters; measured: two noise realisations). "
           f"Provenance: {_provenance(r)}.", "",
           "| structure | Å/voxel | convention | band (shells) | full band | in band | measured |", "|---|---|---|---|---|---|---|"]
    for row in r["snr_conventions"]:
        meas = row["measured_final_over_nominal_full_band"]
        out.append(f"| {row['structure']} | {row['voxel_size_A']:g} | {row['snr_convention']} | {row['band_threshold_shells']} | "
                   f"{row['final_over_nominal_full_band']:.2f} | {row['final_over_nominal_in_band']:.2f} | "
                   f"{'- (does not fit 24³)' if meas is None else f'{meas:.2f}'} |")
    out += ["", f"Speed: 2,000 subtomograms of 24³ in {r['seconds_2000_subtomograms']:.1f} s.", ""]
    return out


def demo(results: dict) -> list[str]:
    r = results.get("demo_truth")
    if not r:
        return []
    s = r["complex_picks_scores"]
    return ["## Demo against its ground truth", "", "`make demo && make bench-demo-truth`.", "",
            "| picks (complex / junk) | K | complex picks: homogeneity, completeness | junk picks in complex classes | date | commit | machine |",
            "|---|---|---|---|---|---|---|",
            f"| {r['complex_picks']} / {r['junk_picks']} | {r['k']} | {s['homogeneity']:.3f}, {s['completeness']:.3f} | "
            f"{r['junk_in_complex_classes']} | {_provenance(r)} |", ""]


def scale(results: dict) -> list[str]:
    runs = sorted((r for name, r in results.items() if name.startswith("scale_run_")), key=lambda r: r["n"])
    if not runs:
        return []
    out = ["## Scale: measured DISCA runs and the projection to 200,000", "",
           "`make bench-scale-run`: the five shipped structures (SNR 0.1 paper convention, ±60°), narrow network, "
           "one epoch per M-step on at most `train_per_cluster` of each cluster, E-step fitted to `fit_sample` of them; seconds and peak RSS per step of an "
           "iteration (features of all N; PCA, mixtures and split/merge tests; M-step with BatchNorm recalibration), "
           "whole process for export; accuracy of the exported labels against the truth.", "",
           "| N | iterations | features s | mixtures s | M-step s | s / iteration | peak RSS (GB) | export s | K | homogeneity | completeness | date | commit | machine |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        p, e = r["per_iteration"]["seconds"], r["export"]
        out.append(f"| {r['n']:,} | {len(r['iterations'])} | {p['features']:.0f} | {p['mixtures']:.0f} | {p['training']:.0f} | "
                   f"{r['seconds_per_iteration']:.0f} | {max(r['rss_peak_mb'].values()) / 1024:.1f} | {e['seconds']:.0f} | "
                   f"{e['k']} | {e['homogeneity']:.3f} | {e['completeness']:.3f} | {_provenance(r)} |")
    proj = results.get("scale_projection")
    if proj:
        out += ["", f"Projected at {proj['target_n']:,} from N = {', '.join(f'{n:,}' for n in proj['from_n'])} "
                f"(`bench/scale_run.py --project`: features and mixtures a straight line in N, the M-step at its bound of "
                f"{proj['training_bound_samples']:,} subtomograms at the slowest measured {proj['training_samples_per_s']:.0f} per s): features {proj['features'] / 60:.0f} min, mixtures {proj['mixtures'] / 60:.1f} min, "
                f"M-step {proj['training'] / 60:.1f} min, **{proj['seconds_per_iteration'] / 3600:.2f} h per iteration, "
                f"{proj['hours_per_run']:.1f} h for 20 iterations**, peak RSS {proj['rss_peak_mb'] / 1024:.1f} GB "
                f"({_provenance(proj)})."]
    for name, r in sorted(results.items()):
        if name.startswith("scale_full_mstep_"):  # the bounded M-step against the published full one
            e, p = r["export"], r["per_iteration"]["seconds"]
            out += ["", f"The full M-step (`train_per_cluster: 0`, every subtomogram each epoch; "
                    f"`make bench-scale-full-mstep`) at {r['n']:,}, against the bounded row above: "
                    f"M-step {p['training']:.0f} s per iteration, K {e['k']}, homogeneity {e['homogeneity']:.3f}, "
                    f"completeness {e['completeness']:.3f} ({_provenance(r)})."]
    sub = results.get("radial_subsample")
    if sub:
        out += ["", "Why the E-step is fitted to a sample (`make bench-radial-subsample`, the 50,000 store): the radial "
                "warm-up clustering fitted on all of it against a sample assigned to all —",
                *[f"fitted on {r['fitted_on']:,}: global BIC K {r['global_bic_k']}, after the split tests K {r['k']}, "
                  f"homogeneity {r['homogeneity']:.3f}, completeness {r['completeness']:.3f};" for r in sub["rows"]],
                f"({_provenance(sub)})."]
    return out + [""]


def heldout() -> list[str]:
    h = json.loads((HERE / "heldout.json").read_text())
    return [f"## Held-out structures (fixed {h['date']})", "", h["rule"], "", "| structure | what |", "|---|---|",
            *[f"| {k} | {v} |" for k, v in h["structures"].items()], ""]


def others(results: dict, shown: set[str]) -> list[str]:
    out = ["## Other result files", "",
           "Earlier benchmarks (project SNR convention unless stated); the figures are in each file.", "",
           "| result file | date | commit | machine |", "|---|---|---|---|"]
    for name, r in results.items():
        if name not in shown:
            out.append(f"| [{name}](results/{name}.json) | {_provenance(r)} |")
    return out + [""]


def render() -> str:
    results = _load()
    shown = ({n for n in results if n.startswith(("table1_paper-convention_snr", "shape_snr", "scale_run_", "scale_full_mstep_"))}
             | {"simulate", "demo_truth", "scale_projection", "radial_subsample"})
    lines = ["# Benchmarks", "",
             "Generated by `make bench-report` from `bench/results/*.json`; do not edit by hand. Every figure was "
             "measured by the command named in its section on the machine in its row.", ""]
    for part in (table1(results), shape(results), simulate(results), demo(results), scale(results), heldout(),
                 others(results, shown)):
        lines += part
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if bench/README.md is not up to date")
    text = render()
    if ap.parse_args().check:
        if not PAGE.exists() or PAGE.read_text() != text:
            sys.exit("bench/README.md is not up to date with bench/results/: run `make bench-report`")
        return
    PAGE.write_text(text)
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
