"""Benchmark the simulator (`make bench-simulate`): time for 2,000 subtomograms of 24³, measured SNR
against the target over the paper's grid, missing-wedge leakage, and the two SNR conventions: for each
of three structures at 10 and 16 Å per voxel, the final volume's SNR per unit of nominal SNR, full
band and within the paper convention's band threshold (predicted from the filters, and measured from
two noise realisations). Prints tables and writes bench/results/simulate.json."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402

from discaflow.errors import InputError  # noqa: E402
from discaflow.io.store import SubtomogramStore  # noqa: E402
from discaflow.simulate.imaging import Imaging, fourier_grid  # noqa: E402
from discaflow.simulate.structures import load_structure  # noqa: E402
from discaflow.simulate.imaging import band_threshold_shells  # noqa: E402
from discaflow.simulate.subtomograms import final_snr, simulate_subtomograms  # noqa: E402

NAMES = ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3")
VOXEL_A = 16.0


def wedge_leakage(vols, tilt_max_deg, margin_deg=5.0):
    shape = vols.shape[1:]
    kz, ky, kx = np.broadcast_arrays(*(k * n for k, n in zip(fourier_grid(shape, 1.0), shape)))
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    valid = np.sqrt(kz**2 + ky**2 + kx**2) >= 3
    power = (np.abs(np.fft.rfftn(vols, axes=(1, 2, 3))) ** 2).sum(0)
    return power[valid & (angle > tilt_max_deg + margin_deg)].sum() / power[valid & (angle < tilt_max_deg - margin_deg)].sum()


def two_realisation_snr(folder: Path, structures, imaging: Imaging, per_class: int = 200) -> float:
    """SNR of the written volumes as rho / (1 - rho) between two noise realisations of the same particles."""
    data = []
    for noise_seed in (1, 2):
        path = folder / f"conv{noise_seed}.h5"
        simulate_subtomograms(structures, path, imaging, per_class=per_class, seed=3, noise_seed=noise_seed,
                              dtype="float32", progress=False)
        with SubtomogramStore(path) as s:
            data.append(s.read())
    a, b = (d.reshape(len(d), -1) - d.reshape(len(d), -1).mean(1, keepdims=True) for d in data)
    rho = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    return rho / (1 - rho)


def conventions(tmp: Path) -> list[dict]:
    """Final-volume SNR / nominal SNR for both conventions (the ratio does not depend on the nominal SNR)."""
    rows = []
    print(f"\n{'structure':>9} {'Å/vox':>6} {'convention':>12} {'band':>5} {'full band':>10} {'in band':>8} {'measured':>9}")
    for name in ("4v4r", "3j9i", "1bxn"):
        for voxel in (10.0, 16.0):
            structures = [load_structure(REPO / "resources" / "structures" / f"{name}.mrc", voxel)]
            band = band_threshold_shells(24, voxel)
            for convention in ("final_volume", "paper"):
                imaging = Imaging(voxel, snr=0.1, snr_convention=convention)
                full = final_snr(structures, imaging, 24, 0) / imaging.snr
                inside = final_snr(structures, imaging, 24, 0, band_shells=band) / imaging.snr
                try:  # the two-realisation estimate needs the structure to fit the 24³ box
                    measured = two_realisation_snr(tmp, structures, imaging) / imaging.snr
                except InputError:  # too large for the box at this voxel size
                    measured = None
                rows.append({"structure": name, "voxel_size_A": voxel, "box_vox": 24, "snr_convention": convention,
                             "band_threshold_shells": band, "final_over_nominal_full_band": full,
                             "final_over_nominal_in_band": inside, "measured_final_over_nominal_full_band": measured})
                shown = "-" if measured is None else f"{measured:.2f}"
                print(f"{name:>9} {voxel:>6g} {convention:>12} {band:>5} {full:>10.2f} {inside:>8.2f} {shown:>9}")
    return rows


def main() -> None:
    structures = [load_structure(REPO / "resources" / "structures" / f"{n}.mrc", VOXEL_A) for n in NAMES]
    tmp = Path(tempfile.mkdtemp())
    # Speed: 2,000 subtomograms (5 classes × 400, the paper's set size), float16 store, progress off.
    t0 = time.perf_counter()
    simulate_subtomograms(structures, tmp / "speed.h5", Imaging(VOXEL_A, snr=0.1), per_class=400, progress=False)
    seconds = time.perf_counter() - t0
    print(f"2,000 subtomograms of 24³ (5 classes, SNR 0.1, ±60°): {seconds:.1f} s "
          f"({2000 / seconds:.0f} subtomograms/s), store {(tmp / 'speed.h5').stat().st_size / 2000 / 1024:.1f} KiB each")

    rows = []
    print(f"\n{'SNR':>6} {'tilt':>5} {'measured':>9} {'error %':>8} {'wedge %':>9}")
    for snr in (0.1, 0.03, 0.01, 0.003, 0.001):
        for tilt in (60.0, 40.0):
            imaging = Imaging(VOXEL_A, snr=snr, tilt_min_deg=-tilt, tilt_max_deg=tilt)
            data = []
            for noise_seed in (1, 2):
                path = tmp / f"snr{noise_seed}.h5"
                simulate_subtomograms(structures, path, imaging, per_class=400, seed=3, noise_seed=noise_seed,
                                      dtype="float32", progress=False)
                with SubtomogramStore(path) as s:
                    data.append(s.read())
            leak = wedge_leakage(data[0], tilt)
            a, b = (d.reshape(len(d), -1) - d.reshape(len(d), -1).mean(1, keepdims=True) for d in data)
            rho = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
            measured = rho / (1 - rho)
            # standard error of rho over the 2,000 particles (spread of per-particle estimates)
            per = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
            se = per.std() / np.sqrt(len(per))
            rows.append({"snr": snr, "tilt_max_deg": tilt, "measured_snr": measured, "error_pct": 100 * (measured - snr) / snr,
                         "estimator_se_pct": float(100 * se / snr), "wedge_leakage_pct": float(100 * leak)})
            print(f"{snr:>6g} {tilt:>4.0f}° {measured:>9.5f} {rows[-1]['error_pct']:>+8.1f} {100 * leak:>9.5f}"
                  f"   (estimator s.e. ±{rows[-1]['estimator_se_pct']:.1f} %)")
    convention_rows = conventions(tmp)
    write_result("simulate", {"voxel_size_A": VOXEL_A, "box_vox": 24, "structures": list(NAMES),
                              "seconds_2000_subtomograms": seconds, "snr_grid": rows,
                              "snr_method": "two noise realisations of the same 2,000 particles: SNR = rho/(1-rho)",
                              "snr_conventions": convention_rows,
                              "snr_conventions_method": "full band and in band: signal variance of the filtered "
                              "particle (8 random orientations) / noise variance, from the filters; measured: two "
                              "noise realisations of 200 particles, rho/(1-rho), nominal SNR 0.1"})


if __name__ == "__main__":
    main()
