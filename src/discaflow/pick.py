"""Template-free particle picking by Difference of Gaussians (DoG), streamed over z-slabs.

The method follows the DISCA paper's reference picker: DoG with σ1 from the expected particle
radius (default 7 nm, at least 2 voxels) and σ2 = 1.1·σ1; local maxima of the DoG response; the
threshold T = m + t·(M − m)/20 over the peak values (m, M: smallest and largest peak; t = 3); peaks
closer than a minimum distance suppressed in favour of the stronger one.

Streaming. The tomogram is read and binned z-row by z-row and the DoG is computed in blocks of
``slab_vox`` rows, each intermediate row once: the Gaussian is separable, so its in-plane (y, x)
passes need only the row itself, and its z pass needs the rows within the kernel's reach (4σ on
each side, so blocks effectively overlap by 4σ1 + 4σd ≥ 4σ2 rows, held in small buffers). Every DoG
value is computed from exactly the data a whole-volume filter would use, and in the same order
whatever the block size: block results are identical to whole-volume results, and peak memory is
set by the block size and the plane, not the tomogram's depth.

Speed. G(σ2) is computed as G(σd) applied to G(σ1), σd = σ1·√(ratio² − 1), exact for Gaussians
and a 2.2× shorter second kernel; z passes are float32 matrix products (BLAS); in-plane passes run
on a thread pool (SciPy's filters release the GIL); local maxima compare the 6 face neighbours
over the block and the other 20 only for the few candidates left.

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
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from discaflow.errors import InputError
from discaflow.io.mrc import open_volume_mmap
from discaflow.io.slabs import SlabReader, binned_shape, read_binned_rows

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TRUNCATE = 4.0  # Gaussian kernels reach int(4σ + 0.5) voxels, as scipy's default
CHUNK = 8  # z rows per BLAS call of the z pass (aligned to absolute z)


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
    slab_vox: int = 8  # binned z-rows per streamed block (sets peak memory, not the result)
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


def extraction_grid(voxel_size_A: float, target_voxel_size_A: float | None) -> tuple[int, float]:
    """How extraction reaches the target voxel size: an integer block-averaging factor, and the voxel
    size of the subtomograms. The target is met exactly: where no integer factor hits it within 0.1 %
    (16 Å from 2.62 Å), the factor is the largest one at or below the target and each box is then
    resampled by cubic-spline interpolation (``extract.sample_box``)."""
    if not target_voxel_size_A:
        return 1, float(voxel_size_A)
    factor = binning_factor(voxel_size_A, target_voxel_size_A)
    if abs(voxel_size_A * factor - target_voxel_size_A) <= 1e-3 * target_voxel_size_A:
        return factor, float(voxel_size_A * factor)
    return max(1, int(target_voxel_size_A // voxel_size_A)), float(target_voxel_size_A)


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


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian weights reaching int(4σ + 0.5) samples, as scipy.ndimage uses."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def dog_filter(volume: np.ndarray, s1: float, s2: float, sign: float) -> np.ndarray:
    """sign·(G(σ1) − G(σ2)) of a whole volume, computed as the streamed picker does."""
    stream = _DogStream(lambda a, b: np.asarray(volume[a:b], np.float32), volume.shape, s1, s2, sign, threads=1)
    return stream.rows(0, volume.shape[0])


class _RowBuffer:
    """Consecutive z-rows [lo, hi) of one intermediate, kept as the blocks they were made in.

    Blocks are never concatenated (no transient copy of the whole buffer); blocks entirely below the
    lowest row still needed are dropped.
    """

    def __init__(self):
        self.blocks: list[tuple[int, np.ndarray]] = []
        self.lo = self.hi = 0

    def drop_below(self, z: int) -> None:
        while self.blocks and self.blocks[0][0] + len(self.blocks[0][1]) <= z:
            self.blocks.pop(0)
        if self.blocks:
            self.lo = max(self.blocks[0][0], min(z, self.hi))
        else:
            self.lo = self.hi = max(self.hi, z)

    def append(self, start: int, rows: np.ndarray) -> None:
        if self.blocks and start != self.hi:
            raise ValueError("row buffer: rows must be appended contiguously")
        if not self.blocks:
            self.lo = start
        self.blocks.append((start, rows))
        self.hi = start + len(rows)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """A new array holding rows ``idx``."""
        if len(idx) and (idx.min() < self.lo or idx.max() >= self.hi):
            raise ValueError(f"row buffer holds rows {self.lo}-{self.hi - 1}, asked for {idx.min()}-{idx.max()}")
        first = self.blocks[0][1]
        out = np.empty((len(idx), *first.shape[1:]), first.dtype)
        for start, rows in self.blocks:
            sel = (idx >= start) & (idx < start + len(rows))
            if sel.any():
                pos = np.flatnonzero(sel)
                src = idx[sel] - start
                if len(pos) > 1 and np.all(np.diff(pos) == 1) and np.all(np.diff(src) == 1):
                    out[pos[0]: pos[-1] + 1] = rows[src[0]: src[-1] + 1]
                else:
                    out[pos] = rows[src]
        return out


class _DogStream:
    """The DoG of a volume, block of z-rows by block, each intermediate row computed once.

    G(σ) is separable: the in-plane (y, x) passes of a z-row need no other rows, so they run once per
    row; only the z pass needs neighbouring rows, kept in small buffers. G(σ2) is G(σd) applied to
    G(σ1). At the volume's z faces rows are mirrored (scipy's 'reflect' mode, as in-plane). Blocks
    must be requested in increasing z.
    """

    def __init__(self, read_rows, shape, s1: float, s2: float, sign: float, threads: int = 2):
        self.read_rows, self.nz = read_rows, shape[0]
        self.s1, self.sd = s1, math.sqrt(s2 * s2 - s1 * s1)
        self.w1, self.wd = gaussian_kernel(self.s1), gaussian_kernel(self.sd)
        self.r1, self.rd = len(self.w1) // 2, len(self.wd) // 2
        self.sign = sign
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.a = _RowBuffer()  # in-plane σ1 of the data
        self.g1 = _RowBuffer()  # G(σ1)
        self.b = _RowBuffer()  # in-plane σd of G(σ1)

    def _map(self, fn, n):
        """Run fn(lo, hi) over up to ``threads`` chunks of range(n)."""
        edges = np.linspace(0, n, min(self.threads, max(n, 1)) + 1).astype(int)
        chunks = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        if self._pool is None or len(chunks) == 1:
            for a, b in chunks:
                fn(a, b)
        else:
            list(self._pool.map(lambda c: fn(*c), chunks))

    def _inplane(self, rows: np.ndarray, sigma: float) -> np.ndarray:
        out = np.empty_like(rows)

        def work(a, b):
            ndimage.gaussian_filter(rows[a:b], sigma, truncate=TRUNCATE, mode="reflect", axes=(1, 2), output=out[a:b])

        self._map(work, len(rows))
        return out

    def _zpass(self, buf: _RowBuffer, lo: int, hi: int, weights: np.ndarray) -> np.ndarray:
        """Σ_k w_k · buf[z + k] for z in [lo, hi), mirroring rows beyond the volume's faces.

        Computed as float32 matrix products (a banded matrix of the weights times a window of rows):
        BLAS does this several times faster than a line-by-line 1-D correlation. Rows are computed in
        chunks of ``CHUNK`` aligned to absolute z, so every row comes from the same BLAS call whatever
        the block size: results do not depend on ``slab_vox``.
        """
        r = len(weights) // 2
        out = np.empty((hi - lo, *buf.blocks[0][1].shape[1:]), np.float32)
        band = np.zeros((CHUNK, CHUNK + 2 * r), np.float32)
        for j in range(CHUNK):
            band[j, j: j + 2 * r + 1] = weights
        for c0 in range(lo - lo % CHUNK, hi, CHUNK):
            c1 = min(c0 + CHUNK, self.nz)
            idx = np.arange(c0 - r, c1 + r)
            idx = np.where(idx < 0, -idx - 1, idx)
            idx = np.where(idx >= self.nz, 2 * self.nz - idx - 1, idx)
            window = buf.take(idx)
            rows = (band[: c1 - c0, : c1 - c0 + 2 * r] @ window.reshape(len(idx), -1)).reshape(c1 - c0, *window.shape[1:])
            a, b = max(c0, lo), min(c1, hi)
            out[a - lo: b - lo] = rows[a - c0: b - c0]
        return out

    def _ensure(self, buf: _RowBuffer, lo: int, hi: int, make) -> None:
        lo, hi = max(lo, 0), min(hi, self.nz)
        buf.drop_below(lo)
        if buf.hi < hi:
            start = max(buf.hi, lo)
            buf.append(start, make(start, hi))

    def rows(self, z0: int, z1: int) -> np.ndarray:
        """DoG rows ``z0:z1`` (float32); successive calls must have non-decreasing ``z0``."""
        r1, rd = self.r1, self.rd

        def down(z):
            return z - z % CHUNK

        def up(z):
            return -(-z // CHUNK) * CHUNK

        # Both z passes work in whole chunks aligned to absolute z (see _zpass).
        b_lo, b_hi = down(z0) - rd, up(z1) + rd
        g_lo, g_hi = down(b_lo), up(b_hi)
        self._ensure(self.a, g_lo - r1, g_hi + r1, lambda a, b: self._inplane(self.read_rows(a, b), self.s1))
        self._ensure(self.g1, g_lo, g_hi, lambda a, b: self._zpass(self.a, a, b, self.w1))
        self._ensure(self.b, b_lo, b_hi, lambda a, b: self._inplane(self.g1.take(np.arange(a, b)), self.sd))
        dog = self.g1.take(np.arange(z0, z1)) - self._zpass(self.b, z0, z1, self.wd)
        if self.sign < 0:
            np.negative(dog, out=dog)
        return dog

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _local_maxima(dog: np.ndarray, core: slice):
    """(z, y, x) of positive voxels of rows ``core`` of ``dog`` that are >= all 26 neighbours.

    Neighbours outside ``dog`` count as −inf. The 6 face neighbours are compared over the whole block
    (cheap boolean passes), the 20 edge and corner neighbours only for the few candidates left.
    """
    d = dog
    z0, z1 = core.start, core.stop
    c = d[z0:z1]
    cand = c > 0
    for axis in (1, 2):
        hi_s = [slice(None)] * 3
        lo_s = [slice(None)] * 3
        hi_s[axis], lo_s[axis] = slice(1, None), slice(None, -1)
        cand[tuple(hi_s)] &= c[tuple(hi_s)] >= c[tuple(lo_s)]
        cand[tuple(lo_s)] &= c[tuple(lo_s)] >= c[tuple(hi_s)]
    if z0 > 0:
        cand &= c >= d[z0 - 1: z1 - 1]
    else:
        cand[1:] &= c[1:] >= c[:-1]
    if z1 < len(d):
        cand &= c >= d[z0 + 1: z1 + 1]
    else:
        cand[:-1] &= c[:-1] >= c[1:]
    zz, yy, xx = np.nonzero(cand)
    zz = zz + z0
    val = d[zz, yy, xx]
    keep = np.ones(len(zz), bool)
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if abs(dz) + abs(dy) + abs(dx) < 2:
                    continue
                z, y, x = zz + dz, yy + dy, xx + dx
                ok = (z >= 0) & (z < d.shape[0]) & (y >= 0) & (y < d.shape[1]) & (x >= 0) & (x < d.shape[2])
                nb = np.full(len(zz), -np.inf, np.float32)
                nb[ok] = d[z[ok], y[ok], x[ok]]
                keep &= val >= nb
    return zz[keep], yy[keep], xx[keep]


def dog_peaks(reader: SlabReader, factor: int, s1: float, s2: float, sign: float, border_vox: int,
              slab_vox: int = 8, threads: int = 2, progress=None):
    """All positive local maxima of the DoG inside the border: (zyx binned int array, values).

    The DoG is streamed in blocks of ``slab_vox`` binned rows (see :class:`_DogStream`); the result
    does not depend on the block size.
    """
    nzb, nyb, nxb = binned_shape(reader.shape, factor)
    stream = _DogStream(lambda a, b: read_binned_rows(reader, a, b, factor), (nzb, nyb, nxb), s1, s2, sign, threads)
    coords, values = [], []
    b = border_vox
    starts = list(range(0, nzb, max(1, slab_vox)))
    try:
        for i, z0 in enumerate(starts):
            z1 = min(nzb, z0 + slab_vox)
            lo, hi = max(0, z0 - 1), min(nzb, z1 + 1)  # one row more each side for the 3×3×3 test
            dog = stream.rows(lo, hi)
            zz, yy, xx = _local_maxima(dog, slice(z0 - lo, z1 - lo))
            vals = dog[zz, yy, xx]
            zz = zz + lo
            keep = (zz >= b) & (zz < nzb - b) & (yy >= b) & (yy < nyb - b) & (xx >= b) & (xx < nxb - b)
            coords.append(np.stack([zz[keep], yy[keep], xx[keep]], axis=1))
            values.append(vals[keep])
            if progress:
                progress(i + 1, len(starts))
    finally:
        stream.close()
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
    from scipy.spatial import cKDTree

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


def check_not_constant(reader: SlabReader, rows: int = 16) -> None:
    """Raise :class:`InputError` when every voxel of the tomogram has the same value (an empty export)."""
    lo, hi = np.inf, -np.inf
    for z in range(0, reader.shape[0], rows):
        block = reader.read_rows(z, z + rows)
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        if hi > lo:
            return
    raise InputError(f"{reader.path}: every voxel is {lo:g}: the file holds no image; check the reconstruction or export")


def pick_tomogram(path: str | os.PathLike, params: PickParams, voxel_size_A: float | None = None,
                  target_voxel_size_A: float | None = None, mask_path=None, tomo_name: str | None = None,
                  progress=None) -> tuple["pd.DataFrame", dict]:
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
    if n_peaks == 0:
        check_not_constant(reader)
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
    import pandas as pd  # imported late: the DoG's peak memory does not carry it

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
