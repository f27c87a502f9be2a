"""Benchmark picking and extraction (`make bench-picking`): recall/precision against ground truth,
throughput and peak memory of the streamed picker against a plain whole-volume SciPy DoG, memory
when the tomogram doubles, and extraction speed. Prints a table; writes bench/results/picking.json."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEAK_RSS_MB, REPO, run_child, write_result  # noqa: E402

VOXEL_A = 16.0
NAMES = ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3")

# The plain whole-volume reference, run in its own process so its peak RSS is its own.
REFERENCE = r"""
import json, resource, sys, time
import mrcfile, numpy as np
from scipy import ndimage
path, s1, s2 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
t = time.perf_counter()
v = -np.asarray(mrcfile.read(path), dtype=np.float32)          # dark particles -> peaks
dog = ndimage.gaussian_filter(v, s1) - ndimage.gaussian_filter(v, s2)
peaks = (ndimage.maximum_filter(dog, size=3) == dog) & (dog > 0)
n = int(peaks.sum())
print(json.dumps({"seconds": time.perf_counter() - t, "maxima": n, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

OURS = r"""
import json, resource, sys, time
from discaflow.pick import PickParams, pick_tomogram
path, threads = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
table, summary = pick_tomogram(path, PickParams(threads=threads))
print(json.dumps({"seconds": time.perf_counter() - t, "maxima": summary["local_maxima"], "picked": len(table),
                  "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)


def main() -> None:
    from discaflow.extract import extract_tomogram
    from discaflow.io.mrc import write_volume
    from discaflow.io.star import read_star, write_star
    from discaflow.metrics import inside_border, match_picks
    from discaflow.pick import PickParams, pick_tomogram, sigmas_vox
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import noise_variance
    from discaflow.simulate.tomograms import simulate_tomogram

    tmp = Path(tempfile.mkdtemp())
    structures = [load_structure(REPO / "resources" / "structures" / f"{n}.mrc", VOXEL_A) for n in NAMES]
    figures: dict = {"voxel_size_A": VOXEL_A, "structures": list(NAMES)}

    # 1. Recall / precision at default settings, SNR 0.1 and 0.03, ±60°.
    print("Recall and precision at the default settings (radius 70 Å, reference threshold t = 3), 16 Å/voxel")
    print(f"{'SNR':>6} {'true':>5} {'boxable':>8} {'picks':>6} {'recall':>7} {'recall(box)':>12} {'precision':>10}")
    rows = []
    for snr in (0.1, 0.03):
        imaging = Imaging(VOXEL_A, snr=snr)
        nv = noise_variance(structures, imaging, 24, seed=0)
        tot = {"true": 0, "found": 0, "true_boxable": 0, "found_boxable": 0, "picked": 0, "correct": 0}
        for i in range(4):
            res = simulate_tomogram(structures, imaging, shape_xyz_vox=(256, 256, 128), particles_per_class=20,
                                    vesicles=1, blobs=20, noise_var=nv, seed=[0, i])
            path = tmp / f"snr{snr}_{i}.mrc"
            write_volume(path, res.tomogram, VOXEL_A)
            table, _ = pick_tomogram(path, PickParams())
            radius = res.particles["dfRadiusAngst"].to_numpy() / VOXEL_A
            m = match_picks(table, res.particles, radius)
            box = inside_border(res.particles[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(), (256, 256, 128), 12)
            mb = match_picks(table, res.particles[box], radius[box])
            for k, v in (("true", m["true"]), ("found", m["found"]), ("true_boxable", mb["true"]), ("found_boxable", mb["found"]),
                         ("picked", m["picked"]), ("correct", m["correct_picks"])):
                tot[k] += v
            if snr == 0.1 and i == 0:
                write_star(tmp / "picks0.star", table)
                first = path
        row = {"snr": snr, **tot, "recall": tot["found"] / tot["true"], "recall_boxable": tot["found_boxable"] / tot["true_boxable"],
               "precision": tot["correct"] / tot["picked"]}
        rows.append(row)
        print(f"{snr:>6g} {tot['true']:>5} {tot['true_boxable']:>8} {tot['picked']:>6} {row['recall']:>7.3f} {row['recall_boxable']:>12.3f} {row['precision']:>10.3f}")
    figures["accuracy"] = rows

    # 2. Speed and memory on 512³ and 512×512×1024 tomograms (tiles of simulated 256×256×128 ones).
    tile = np.asarray(__import__("mrcfile").read(first), dtype=np.float32)
    s1, s2 = sigmas_vox(PickParams(), VOXEL_A)
    print(f"\nSpeed and peak RSS (σ1 = {s1:.2f}, σ2 = {s2:.2f} voxels; each run in its own process)")
    print(f"{'tomogram':>16} {'method':>28} {'s':>7} {'Mvox/s':>8} {'peak RSS MB':>12} {'maxima':>8}")
    speed = []
    for reps in ((4, 2, 2), (8, 2, 2)):
        vol = np.tile(tile, reps)
        path = tmp / f"big_{vol.shape[0]}.mrc"
        write_volume(path, vol, VOXEL_A)
        nvox = vol.size
        del vol
        label = f"{512}x{512}x{128 * reps[0]}"
        results = {"reference whole-volume scipy": run_child(REFERENCE, path, s1, s2),
                   "discaflow 1 thread": run_child(OURS, path, 1),
                   "discaflow 2 threads": run_child(OURS, path, 2)}
        for method, r in results.items():
            r["mvox_per_s"] = nvox / r["seconds"] / 1e6
            print(f"{label:>16} {method:>28} {r['seconds']:>7.1f} {r['mvox_per_s']:>8.1f} {r['peak_rss_mb']:>12.0f} {r['maxima']:>8}")
        ref = results["reference whole-volume scipy"]
        for method in ("discaflow 1 thread", "discaflow 2 threads"):
            results[method]["speedup_vs_reference"] = ref["seconds"] / results[method]["seconds"]
            results[method]["rss_fraction_of_reference"] = results[method]["peak_rss_mb"] / ref["peak_rss_mb"]
        speed.append({"tomogram_xyz": label, "voxels": int(nvox), "results": results})
        path.unlink()
    for s in speed:
        r2 = s["results"]["discaflow 2 threads"]
        r1 = s["results"]["discaflow 1 thread"]
        print(f"{s['tomogram_xyz']}: speed-up {r2['speedup_vs_reference']:.2f}x (2 threads), {r1['speedup_vs_reference']:.2f}x (1 thread); "
              f"peak RSS {100 * r2['rss_fraction_of_reference']:.0f} % of the reference")
    figures["speed"] = speed
    figures["rss_growth_when_tomogram_doubles"] = (speed[1]["results"]["discaflow 2 threads"]["peak_rss_mb"] /
                                                   speed[0]["results"]["discaflow 2 threads"]["peak_rss_mb"])
    print(f"peak RSS ratio when the tomogram doubles (2 threads): {figures['rss_growth_when_tomogram_doubles']:.2f}")

    # 3. Extraction speed and store size.
    picks = read_star(tmp / "picks0.star")
    reps = max(1, 2000 // max(len(picks), 1))
    many = picks.loc[picks.index.repeat(reps)].reset_index(drop=True)
    t = time.perf_counter()
    counts = extract_tomogram(first, many, tmp / "e.h5", box_vox=24)
    sec = time.perf_counter() - t
    size = (tmp / "e.h5").stat().st_size
    figures["extraction"] = {"subtomograms": counts["extracted"], "seconds": sec, "per_second": counts["extracted"] / sec,
                             "bytes_per_particle": size / counts["extracted"], "box_vox": 24, "dtype": "float16"}
    print(f"\nExtraction: {counts['extracted']} subtomograms of 24³ in {sec:.2f} s ({counts['extracted'] / sec:.0f}/s), "
          f"{size / counts['extracted'] / 1024:.1f} KiB per particle (float16, gzip)")
    write_result("picking", figures)


if __name__ == "__main__":
    main()
