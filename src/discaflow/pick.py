"""Template-free particle picking by Difference of Gaussians (DoG), streamed over z-slabs.

The method follows the DISCA paper's reference picker: DoG with σ1 from the expected particle
radius (default 7 nm, at least 2 voxels) and σ2 = 1.1·σ1; local maxima of the DoG response; the
threshold T = m + t·(M − m)/20 over the peak values (m, M: smallest and largest peak; t = 3); peaks
closer than a minimum distance suppressed in favour of the stronger one.

Streaming. The tomogram is binned by block averaging and filtered in z-slabs that overlap by the
filters' reach (4σ1 + 4σd + 1 binned voxels, more than the 4σ2 the Gaussian kernels extend), so
every voxel's DoG value is computed from exactly the data a whole-volume filter would use: slab
results are identical to whole-volume results, and peak memory is set by the slab size.

Speed. G(σ2) is computed as G(σd) applied to G(σ1), σd = σ1·√(ratio² − 1), which is exact for
Gaussians and needs a 2.2× shorter second kernel; local maxima use three size-3 max passes in
NumPy; slabs run on a thread pool (SciPy's filters release the GIL).

Binning is block averaging, not Fourier cropping: it works slab by slab with no whole-volume FFT,
and its aliasing is harmless here because the DoG (σ1 ≥ 2 binned voxels) is itself a strong
low-pass filter.

Coordinates. Peaks are found on the binned grid; binned voxel i covers unbinned voxels
i·f … i·f + f − 1, so its centre is reported as i·f + (f − 1)/2 in unbinned, 0-based pixels.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from discaflow.errors import InputError
from discaflow.io.mrc import open_volume_mmap
from discaflow.io.slabs import SlabReader, binned_shape, read_binned_rows

log = logging.getLogger(__name__)

TRUNCATE = 4.0  # Gaussian kernels reach int(4σ + 0.5) voxels, as scipy's default


@dataclass
class PickParams:
    """Picking parameters (lengths in Å unless the name says voxels)."""

    particle_radius_A: float = 70.0
    sigma_ratio: float = 1.1
    polarity: str = "dark"  # "dark": dense particles dark (raw tomograms); "bright": inverted
    threshold: str = "reference"  # "reference" | "percentile" | "none"
    threshold_t: float = 3.0
    percentile: float = 99.0
    top_n: int | None = None
    min_distance_A: float | None = None  # default: the particle radius
    border_vox: int = 12  # binned voxels excluded at every face (half the extraction box)
    slab_vox: int = 64  # binned z-rows filtered per slab
    threads: int = 2

    def __post_init__(self):
        if self.polarity not in ("dark", "bright"):
            raise InputError(f"pick.polarity: must be 'dark' or 'bright', got {self.polarity!r}")
        if self.threshold not in ("reference", "percentile", "none"):
            raise InputError(f"pick.threshold: must be 'reference', 'percentile' or 'none', got {self.threshold!r}")
        if self.sigma_ratio <= 1:
            raise InputError(f"pick.sigma_ratio: must be > 1, got {self.sigma_ratio}")
        if self.particle_radius_A <= 0:
            raise InputError(f"pick.particle_radius_A: must be > 0 Å, got {self.particle_radius_A}")


def binning_factor(voxel_size_A: float, target_voxel_size_A: float | None) -> int:
    """Integer block-averaging factor that brings ``voxel_size_A`` closest to the target (≥ 1)."""
    if not target_voxel_size_A:
        return 1
    return max(1, int(round(target_voxel_size_A / voxel_size_A)))


def resolve_voxel_size(reader: SlabReader, configured_A: float | None) -> float:
    """The configured voxel size, else the header's; a missing one is an error that says so."""
    if configured_A:
        return float(configured_A)
    if reader.voxel_size_A > 0:
        return reader.voxel_size_A
    raise InputError(f"{reader.path}: the header has voxel size 0 and the configuration gives none; set voxel_size_A for this dataset")


def sigmas_vox(params: PickParams, binned_voxel_A: float) -> tuple[float, float]:
    """σ1 and σ2 in binned voxels: σ1 = radius / voxel size, at least 2 voxels; σ2 = ratio·σ1."""
    s1 = max(params.particle_radius_A / binned_voxel_A, 2.0)
    return s1, params.sigma_ratio * s1


def _local_max(dog: np.ndarray) -> np.ndarray:
    """3×3×3 maximum filter (outside the array counts as −inf), by separable NumPy passes."""
    m = dog
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (1, 1)
        p = np.pad(m, pad, constant_values=-np.inf)
        sl = [slice(None)] * 3
        a, b, c = list(sl), list(sl), list(sl)
        a[axis], b[axis], c[axis] = slice(0, -2), slice(1, -1), slice(2, None)
        m = np.maximum(np.maximum(p[tuple(a)], p[tuple(b)]), p[tuple(c)])
    return m


def dog_filter(volume: np.ndarray, s1: float, s2: float, sign: float) -> np.ndarray:
    """sign·(G(σ1) − G(σ2)) of ``volume`` (float32), with G(σ2) = G(σd)∘G(σ1)."""
    g1 = ndimage.gaussian_filter(volume, s1, truncate=TRUNCATE, mode="reflect")
    sd = math.sqrt(s2 * s2 - s1 * s1)
    g2 = ndimage.gaussian_filter(g1, sd, truncate=TRUNCATE, mode="reflect")
    g1 -= g2
    if sign < 0:
        np.negative(g1, out=g1)
    return g1


def _reach(s1: float, s2: float) -> int:
    sd = math.sqrt(s2 * s2 - s1 * s1)
    return int(TRUNCATE * s1 + 0.5) + int(TRUNCATE * sd + 0.5) + 1


def dog_peaks(reader: SlabReader, factor: int, s1: float, s2: float, sign: float, border_vox: int,
              slab_vox: int = 64, threads: int = 2, progress=None):
    """All positive local maxima of the DoG inside the border: (zyx binned int array, values)."""
    nzb, nyb, nxb = binned_shape(reader.shape, factor)
    reach = _reach(s1, s2)
    starts = list(range(0, nzb, max(1, slab_vox)))

    def job(z0):
        z1 = min(nzb, z0 + slab_vox)
        lo, hi = max(0, z0 - reach), min(nzb, z1 + reach)
        rows = read_binned_rows(reader, lo, hi, factor)
        dog = dog_filter(rows, s1, s2, sign)
        core = slice(z0 - lo, z1 - lo)
        mx = _local_max(dog[max(0, z0 - lo - 1): z1 - lo + 1])
        mx = mx[(z0 - lo) - max(0, z0 - lo - 1):][: z1 - z0]
        d = dog[core]
        hit = (d == mx) & (d > 0)
        b = border_vox
        zz, yy, xx = np.nonzero(hit)
        zz = zz + z0
        keep = (zz >= b) & (zz < nzb - b) & (yy >= b) & (yy < nyb - b) & (xx >= b) & (xx < nxb - b)
        return np.stack([zz[keep], yy[keep], xx[keep]], axis=1), d[hit][keep]

    coords, values = [], []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, (c, v) in enumerate(pool.map(job, starts)):
            coords.append(c)
            values.append(v)
            if progress:
                progress(i + 1, len(starts))
    if not coords:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.float32)
    return np.concatenate(coords), np.concatenate(values).astype(np.float32)


def threshold_peaks(values: np.ndarray, params: PickParams) -> np.ndarray:
    """Boolean mask of the peaks that pass the threshold rule."""
    if len(values) == 0 or params.threshold == "none":
        return np.ones(len(values), bool)
    if params.threshold == "reference":
        m, big_m = float(values.min()), float(values.max())
        return values >= m + params.threshold_t * (big_m - m) / 20.0
    return values >= np.percentile(values, params.percentile)


def suppress_non_maxima(coords: np.ndarray, values: np.ndarray, min_distance_vox: float) -> np.ndarray:
    """Indices of peaks kept by greedy non-maximum suppression (strongest first, ties by position)."""
    if len(values) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((coords[:, 2], coords[:, 1], coords[:, 0], -values))
    tree = cKDTree(coords.astype(np.float64))
    suppressed = np.zeros(len(values), bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed[tree.query_ball_point(coords[i], r=min_distance_vox - 1e-9)] = True
    return np.asarray(kept, np.int64)


def _mask_keep(mask_path, coords_bin: np.ndarray, factor: int, raw_shape) -> np.ndarray:
    with open_volume_mmap(mask_path) as m:
        shape = tuple(m.data.shape)
        bshape = binned_shape(raw_shape, factor)
        if shape == tuple(raw_shape):
            idx = coords_bin * factor + factor // 2
        elif shape == bshape:
            idx = coords_bin
        else:
            raise InputError(f"{mask_path}: mask shape {shape} (z, y, x) matches neither the tomogram {tuple(raw_shape)} "
                             f"nor its binned shape {bshape}; make the mask on the tomogram's grid")
        if len(idx) == 0:
            return np.zeros(0, bool)
        return np.asarray(m.data[idx[:, 0], idx[:, 1], idx[:, 2]]) > 0.5


def pick_tomogram(path: str | os.PathLike, params: PickParams, voxel_size_A: float | None = None,
                  target_voxel_size_A: float | None = None, mask_path=None, tomo_name: str | None = None,
                  progress=None) -> tuple[pd.DataFrame, dict]:
    """Pick one tomogram. Returns the particle table and a summary of what was done.

    Table columns: ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` (unbinned pixels, 0-based),
    ``rlnAutopickFigureOfMerit`` (the DoG score), ``dfTomoPixelSizeAngst`` (unbinned pixel size).
    """
    reader = SlabReader(path)
    vs = resolve_voxel_size(reader, voxel_size_A)
    factor = binning_factor(vs, target_voxel_size_A)
    bshape = binned_shape(reader.shape, factor)
    if min(bshape) <= 2 * params.border_vox:
        raise InputError(f"{reader.path}: tomogram of {bshape[::-1]} binned voxels (x, y, z) is smaller than the extraction "
                         f"box ({2 * params.border_vox} voxels); use a smaller box or less binning")
    s1, s2 = sigmas_vox(params, vs * factor)
    sign = -1.0 if params.polarity == "dark" else 1.0
    coords, values = dog_peaks(reader, factor, s1, s2, sign, params.border_vox, params.slab_vox, params.threads, progress)
    n_peaks = len(values)
    if mask_path:
        keep = _mask_keep(mask_path, coords, factor, reader.shape)
        coords, values = coords[keep], values[keep]
    sel = threshold_peaks(values, params)
    coords, values = coords[sel], values[sel]
    min_dist_A = params.min_distance_A if params.min_distance_A else params.particle_radius_A
    kept = suppress_non_maxima(coords, values, min_dist_A / (vs * factor))
    if params.top_n:
        kept = kept[: params.top_n]
    coords, values = coords[kept], values[kept]
    xyz = coords[:, ::-1] * factor + (factor - 1) / 2.0
    name = tomo_name or reader.path.stem
    table = pd.DataFrame({
        "rlnTomoName": pd.Series([name] * len(kept), dtype=object),
        "rlnCoordinateX": xyz[:, 0].astype(float), "rlnCoordinateY": xyz[:, 1].astype(float),
        "rlnCoordinateZ": xyz[:, 2].astype(float),
        "rlnAutopickFigureOfMerit": values.astype(float),
        "dfTomoPixelSizeAngst": float(vs),
    })
    summary = {"tomogram": str(reader.path), "shape_zyx": list(reader.shape), "voxel_size_A": vs, "binning": factor,
               "binned_voxel_size_A": vs * factor, "sigma1_vox": s1, "sigma2_vox": s2, "local_maxima": n_peaks,
               "after_threshold": int(sel.sum()), "picked": len(kept)}
    if len(kept) == 0:
        log.warning("%s: no particles picked (%d DoG maxima); lower pick.threshold_t, use pick.threshold: percentile, "
                    "or check pick.polarity", reader.path, n_peaks)
    else:
        log.info("%s: %d particles picked from %d DoG maxima (binning %d, σ1 %.2f voxels)", reader.path, len(kept), n_peaks, factor, s1)
    return table, summary


def params_from_settings(settings: dict, box_vox: int, threads: int = 2) -> PickParams:
    """PickParams from a configuration ``pick`` section; the border is half the extraction box."""
    return PickParams(**settings, border_vox=int(box_vox) // 2, threads=threads)


def run_pick(tomogram, out_star, settings: dict, box_vox: int = 24, voxel_size_A=None, target_voxel_size_A=None,
             mask=None, threads: int = 2, tomo_name=None) -> dict:
    """Pick one tomogram with a configuration ``pick`` section and write the STAR table (atomically)."""
    from discaflow.io.star import write_star

    params = params_from_settings(settings, box_vox, threads)
    table, summary = pick_tomogram(tomogram, params, voxel_size_A, target_voxel_size_A, mask, tomo_name)
    write_star(out_star, table)
    return summary


def evaluate_picking(pick_stars, truth_stars, tomograms, out_json, box_vox=24, voxel_size_A=None,
                     target_voxel_size_A=None) -> dict:
    """Recall/precision per tomogram and overall; recall also for particles whose box fits the tomogram."""
    import json

    from discaflow.io.atomic import atomic_path
    from discaflow.io.star import read_star
    from discaflow.metrics import inside_border, match_picks

    per, totals = [], {"true": 0, "found": 0, "true_boxable": 0, "found_boxable": 0, "picked": 0, "correct_picks": 0}
    for pick_star, truth_star, tomo in zip(pick_stars, truth_stars, tomograms):
        picks, truth = read_star(pick_star), read_star(truth_star)
        reader = SlabReader(tomo)
        vs = resolve_voxel_size(reader, voxel_size_A)
        f = binning_factor(vs, target_voxel_size_A)
        radius = truth["dfRadiusAngst"].to_numpy(float) / vs
        m = match_picks(picks, truth, radius)
        boxable = inside_border(truth[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float),
                                reader.shape[::-1], (box_vox // 2) * f)
        mb = match_picks(picks, truth[boxable], radius[boxable]) if boxable.any() else {"true": 0, "found": 0}
        per.append({"tomogram": Path(str(tomo)).name, **m, "recall_boxable": mb["found"] / max(mb["true"], 1), "true_boxable": mb["true"]})
        totals["true"] += m["true"]; totals["found"] += m["found"]; totals["picked"] += m["picked"]
        totals["correct_picks"] += m["correct_picks"]; totals["true_boxable"] += mb["true"]; totals["found_boxable"] += mb["found"]
    summary = {
        "recall": totals["found"] / max(totals["true"], 1),
        "recall_boxable": totals["found_boxable"] / max(totals["true_boxable"], 1),
        "precision": totals["correct_picks"] / max(totals["picked"], 1),
        **totals, "tomograms": per,
        "definition": "a true particle is found when a pick lies within its radius; 'boxable' = its extraction box fits the tomogram",
    }
    with atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("picking: recall %.3f (boxable %.3f), precision %.3f", summary["recall"], summary["recall_boxable"], summary["precision"])
    return summary
