"""Reference-free alignment and averaging of one class of subtomograms, with gold-standard FSC.

The method (written here rather than taken from a library: ``acryo`` was evaluated — its alignment
models search *local* rotation ranges around given orientations and load particles from tomograms
through dask/polars; a reference-free global SO(3) search over an HDF5 store is not what it offers):

* Particles are split at random into two halves (gold standard), whole groups of particles whose
  boxes overlap at a time (overlapping boxes share noise, which would inflate the FSC). Global searches (the first
  ``global_iterations``) align both halves to one common reference limited to the first band
  (``initial_lowpass_shell``): the unaligned, wedge-compensated average of all particles at first,
  then the sum of the two half maps — this fixes one frame for both halves, as RELION's low-passed
  initial model does. Beyond that band, and in every later iteration, each half is refined only
  against its own average, so the FSC above the first band is not inflated by shared alignment.
* Each iteration searches rotations of the half's reference — a near-uniform SO(3) grid
  (super-Fibonacci) in the first ``global_iterations``, then a local grid around each particle's
  current rotation with the step halved every iteration — and all translations up to
  ``max_shift_vox`` at once by FFT cross-correlation. The score is the constrained correlation
  (Förster et al. 2008): the rotated reference is multiplied by the *particle's* missing wedge and
  normalised by its power inside that wedge, so rotations are not favoured for overlapping the
  wedge less. Both are band-limited to the current resolution and masked by a soft sphere.
* Averages are wedge-compensated: each particle is rotated back, its wedge rotated with it, and the
  Fourier sum divided by the summed wedge weights (clamped below at 5 % of the particle count, so
  frequencies seen by few particles are damped rather than amplified).
* After every iteration the FSC of the half maps sets the next band limit (0.143 crossing + 2
  shells); the final FSC at 0.143 and 0.5 is reported in Å. Below the first band the two halves
  shared a reference, so the FSC there is not independent (RELION's caveat for its initial model).

Pose convention (see :mod:`discaflow.geometry`): particle ≈ reference rotated by ``R`` about the box
centre, then shifted by ``shift`` (x, y, z voxels of the store).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import scipy.fft as sfft
from scipy.spatial.transform import Rotation

from discaflow.fourier import (fsc, full_from_rfft, lowpass_filter, resolution_at, rfft_from_full, rfft_weights,
                               soft_sphere_mask, wedge_mask)
from discaflow.geometry import transform_volume

log = logging.getLogger(__name__)

_FFT_WORKERS = -1
_CHUNK = 512  # particles scored together (memory: about 60 kB each per rotation at 24³)


# ---------------------------------------------------------------- rotation grids

def rotation_grid(step_deg: float) -> Rotation:
    """A near-uniform set of rotations covering SO(3) with about ``step_deg`` between neighbours.

    Super-Fibonacci spiral (Alexa, CVPR 2022). The count N follows from the Haar volume of a ball of
    rotation-angle radius θ = step/2, (θ − sin θ)/π, so that N balls fill SO(3) about once.
    """
    theta = np.radians(step_deg) / 2
    n = int(np.ceil(np.pi / (theta - np.sin(theta))))
    phi, psi = np.sqrt(2.0), 1.533751168755204288118041
    s = np.arange(n) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1.0 - s / n)
    alpha, beta = 2 * np.pi * s / phi, 2 * np.pi * s / psi
    q = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)], axis=1)
    return Rotation.from_quat(q)


def local_grid(step_deg: float) -> Rotation:
    """27 small rotations: rotation vectors on a 3×3×3 grid with spacing ``step_deg`` (identity first)."""
    g = np.radians(step_deg) * np.array([0.0, -1.0, 1.0])
    vecs = np.array([[a, b, c] for a in g for b in g for c in g])
    return Rotation.from_rotvec(vecs)


# ---------------------------------------------------------------- the search

@dataclass
class _Workspace:
    n: int
    mask: np.ndarray          # soft sphere, real space
    wedge: np.ndarray         # rfft layout
    shifts_flat: np.ndarray   # allowed translation positions (flat indices into the wrapped n³ cc volume)
    shifts_xyz: np.ndarray    # (n_shifts, 3) the same as (x, y, z) voxels
    weights: np.ndarray       # rfft weights


def _workspace(n: int, mask_radius: float, tilt_range, max_shift: float) -> _Workspace:
    g = np.fft.fftfreq(n, d=1.0 / n)  # wrapped offsets 0, 1, …, −1
    tz, ty, tx = np.meshgrid(g, g, g, indexing="ij")
    ok = tz**2 + ty**2 + tx**2 <= max_shift**2 + 1e-9
    flat = np.flatnonzero(ok)
    xyz = np.stack([tx.ravel()[flat], ty.ravel()[flat], tz.ravel()[flat]], axis=1)
    tmin, tmax = tilt_range if tilt_range is not None else (None, None)
    return _Workspace(n, soft_sphere_mask(n, mask_radius, 3.0), wedge_mask(n, tmin, tmax), flat, xyz, rfft_weights(n))


def _whitening(pft: np.ndarray, ws: _Workspace) -> np.ndarray:
    """1 / sqrt(mean power per Fourier shell of the particles (inside the wedge)), rfft layout."""
    from discaflow.fourier import shell_index

    shells = shell_index(ws.n)
    measured = ws.wedge > 0
    power = np.zeros(shells.max() + 1)
    count = np.zeros(shells.max() + 1)
    for chunk in range(0, len(pft), _CHUNK):
        p = (np.abs(pft[chunk: chunk + _CHUNK]) ** 2).sum(axis=0)
        power += np.bincount(shells[measured], p[measured], len(power))
    count = np.bincount(shells[measured], None, len(power)) * len(pft)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = power / count
        w = np.where(mean > 0, 1.0 / np.sqrt(mean), 0.0)
    w[0] = 0.0
    return w[shells].astype(np.float32)


def _norms(ft: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Real-space L2 norms of real volumes from their rfft (Parseval), one per leading index."""
    p = (np.abs(ft) ** 2 * ws.weights).reshape(len(ft), -1).sum(axis=1)
    return np.sqrt(p / ws.n**3)


def _subvoxel(cc_flat: np.ndarray, peak_flat: np.ndarray, n: int) -> np.ndarray:
    """Parabolic sub-voxel offsets (x, y, z) around integer peaks of wrapped n³ correlation volumes."""
    idx = np.array(np.unravel_index(peak_flat, (n, n, n)))  # rows z, y, x
    rows = np.arange(len(peak_flat))
    out = np.zeros((len(peak_flat), 3))
    for axis_zyx, col in ((2, 0), (1, 1), (0, 2)):
        vals = []
        for d in (-1, 0, 1):
            j = idx.copy()
            j[axis_zyx] = (j[axis_zyx] + d) % n
            vals.append(cc_flat[rows, np.ravel_multi_index(tuple(j), (n, n, n))])
        m, p0, p = vals
        den = m - 2 * p0 + p
        with np.errstate(invalid="ignore", divide="ignore"):
            off = np.where(den < 0, 0.5 * (m - p) / den, 0.0)
        out[:, col] = np.clip(np.nan_to_num(off), -0.5, 0.5)
    return out


def _score_batch(particle_ft, particle_norm, ref_ft, ref_norm, ws: _Workspace):
    """Best translation score of each particle against its own rotated reference.

    ``particle_ft`` (m, …) and ``ref_ft`` (m, …) pair up row by row, or ``ref_ft`` is (1, …) for all.
    Returns (score (m,), shift_xyz (m, 3)).
    """
    n = ws.n
    cc = sfft.irfftn(particle_ft * np.conj(ref_ft), s=(n, n, n), axes=(1, 2, 3), workers=_FFT_WORKERS)
    cc = cc.reshape(len(cc), -1)
    allowed = cc[:, ws.shifts_flat]
    best = np.argmax(allowed, axis=1)
    rows = np.arange(len(cc))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = allowed[rows, best] / (particle_norm * ref_norm)
    peak = ws.shifts_flat[best]
    shift = ws.shifts_xyz[best] + _subvoxel(cc, peak, n)
    return np.nan_to_num(score, nan=-1.0), shift


def _reference_fts(reference: np.ndarray, rotations: Rotation, band: np.ndarray, ws: _Workspace):
    """rfft (with wedge and band) and norms of the masked reference under each rotation."""
    vols = np.stack([transform_volume(reference, r) * ws.mask for r in rotations])
    ft = sfft.rfftn(vols, axes=(1, 2, 3), workers=_FFT_WORKERS).astype(np.complex64) * (ws.wedge * band)
    return ft, _norms(ft, ws)


def search_global(particle_ft, reference, rotations: Rotation, band, ws: _Workspace, batch: int = 32):
    """For every particle (rfft, wedge applied, unbanded), the best rotation of ``rotations`` and shift."""
    pft = (particle_ft * band).astype(np.complex64)
    pn = _norms(pft, ws)
    m = len(pft)
    best_score = np.full(m, -np.inf)
    best_rot = np.zeros(m, np.int64)
    best_shift = np.zeros((m, 3))
    for start in range(0, len(rotations), batch):
        rots = rotations[start: start + batch]
        rft, rn = _reference_fts(reference, rots, band, ws)
        for j in range(len(rft)):
            score, shift = _score_batch(pft, pn, rft[j: j + 1], rn[j], ws)
            better = score > best_score
            best_score[better], best_rot[better], best_shift[better] = score[better], start + j, shift[better]
    return rotations[best_rot], best_shift, best_score


def search_local(particle_ft, reference, current: Rotation, step_deg: float, band, ws: _Workspace):
    """For every particle, the best of 27 rotations ``current_i · δ`` around its current rotation."""
    pft = (particle_ft * band).astype(np.complex64)
    pn = _norms(pft, ws)
    m = len(pft)
    deltas = local_grid(step_deg)
    best_score = np.full(m, -np.inf)
    best = [None] * m
    best_shift = np.zeros((m, 3))
    for d in deltas:
        cand = current * d
        rft, rn = _reference_fts(reference, cand, band, ws)
        score, shift = _score_batch(pft, pn, rft, rn, ws)
        better = np.flatnonzero(score > best_score)
        best_score[better], best_shift[better] = score[better], shift[better]
        for i in better:
            best[i] = cand[int(i)]
    return Rotation.concatenate(best), best_shift, best_score


# ---------------------------------------------------------------- averaging

def wedge_compensated_average(particles: np.ndarray, rotations: Rotation, shifts: np.ndarray, ws: _Workspace,
                              floor_fraction: float = 0.05, wedges: list | None = None,
                              wedge_ids: np.ndarray | None = None) -> np.ndarray:
    """Average of particles brought back into the reference frame, divided by their summed wedges.
    ``wedges`` (rfft masks) and ``wedge_ids`` (one index per particle): each particle's own wedge;
    without them every particle has ``ws.wedge``."""
    n = ws.n
    full = [full_from_rfft(w) for w in (wedges if wedges is not None else [ws.wedge])]
    ids = np.zeros(len(particles), np.int64) if wedge_ids is None else np.asarray(wedge_ids)
    num = np.zeros((n, n, n // 2 + 1), np.complex128)
    den = np.zeros((n, n, n // 2 + 1))
    for x, r, t, k in zip(particles, rotations, shifts, ids):
        inv = r.inv()
        back = transform_volume(x, inv, shift_xyz_vox=-inv.apply(t))
        w = rfft_from_full(np.clip(transform_volume(full[k], inv), 0, 1))
        num += sfft.rfftn(back) * w
        den += w
    floor = max(1.0, floor_fraction * len(particles))
    avg = sfft.irfftn(num / np.maximum(den, floor), s=(n, n, n))
    return avg.astype(np.float32)


def wedge_groups(tilt_ranges, default, n_particles: int) -> tuple[list, np.ndarray]:
    """Distinct tilt ranges and each particle's index into them. ``tilt_ranges``: None (all
    ``default``) or (N, 2) degrees with NaN rows meaning ``default``; a ``None`` range is no wedge."""
    if tilt_ranges is None:
        return [default], np.zeros(n_particles, np.int64)
    t = np.asarray(tilt_ranges, float).reshape(n_particles, 2)
    keys = [default if np.isnan(row).any() else (float(row[0]), float(row[1])) for row in t]
    ranges = list(dict.fromkeys(keys))
    index = {r: i for i, r in enumerate(ranges)}
    return ranges, np.array([index[k] for k in keys], np.int64)


def _normalise(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    inside = mask > 0.5
    mu, sd = float(v[inside].mean()), float(v[inside].std())
    return ((v - mu) / (sd if sd > 0 else 1.0)).astype(np.float32)


# ---------------------------------------------------------------- half sets

def overlap_groups(coords_xyz: np.ndarray, tomograms: np.ndarray, distance: float) -> np.ndarray:
    """Group particles whose centres are closer than ``distance`` (same units as the coordinates) in
    the same tomogram, transitively (connected components). Boxes that overlap share voxels, so
    their noise is shared: such particles must not be split between the two half sets, or the FSC
    of the half maps measures the shared noise, not the signal."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(coords_xyz)
    rows, cols = [], []
    for t in np.unique(tomograms):
        idx = np.flatnonzero(tomograms == t)
        pairs = cKDTree(np.asarray(coords_xyz, float)[idx]).query_pairs(distance, output_type="ndarray")
        if len(pairs):
            rows.append(idx[pairs[:, 0]])
            cols.append(idx[pairs[:, 1]])
    if not rows:
        return np.arange(n)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def half_sets(n: int, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Half set (1 or 2) of each of ``n`` particles: a random, balanced split of whole groups.

    Groups are dealt in random order to the half with fewer particles. When one group holds more than
    two thirds of the particles the halves cannot be independent; the particles are then split at
    random and a warning says that the FSC is optimistic.
    """
    half = np.ones(n, np.int64)
    if groups is None or len(np.unique(groups)) == n:
        half[rng.permutation(n)[: n // 2]] = 2
        return half
    ids, sizes = np.unique(groups, return_counts=True)
    if sizes.max() > 2 * n / 3:
        log.warning("%d of %d particles form one group of overlapping boxes: half sets cannot be independent, "
                    "so they are split at random and the FSC is optimistic", sizes.max(), n)
        half[rng.permutation(n)[: n // 2]] = 2
        return half
    counts = [0, 0]
    order = rng.permutation(len(ids))
    # largest groups first (in random order among equals) keeps the halves balanced
    order = order[np.argsort(-sizes[order], kind="stable")]
    for g in order:
        h = int(counts[1] < counts[0])
        half[groups == ids[g]] = h + 1
        counts[h] += sizes[g]
    return half


# ---------------------------------------------------------------- the estimator

class SubtomogramAverager:
    """Reference-free, gold-standard alignment and averaging of one class (scikit-learn style).

    Parameters (voxels are those of the subtomograms; angles in degrees)
    ----------
    iterations: total refinement iterations.
    global_iterations: how many of them search all of SO(3) (the rest search locally).
    global_step_deg: spacing of the global rotation grid.
    local_step_deg: first local step; halved every local iteration down to ``min_step_deg``.
    max_shift_vox: largest translation searched (from the box centre).
    mask_radius_vox: soft spherical mask radius (default: box/2 − 3).
    tilt_range_deg: (min, max) tilt of the data's single-axis tilt series (axis y), or None.
    initial_lowpass_shell: band limit of the first iteration in Fourier shells (default box/6).
    seed: random half-set split.

    Fitted attributes: ``average_``, ``half_maps_`` (2 volumes), ``rotations_`` (Rotation, one per
    particle), ``shifts_`` (n, 3), ``scores_``, ``half_`` (1 or 2 per particle), ``fsc_`` (per shell),
    ``resolution_0143_A_``, ``resolution_05_A_``, ``history_`` (per-iteration band limit, mean score,
    seconds).
    """

    def __init__(self, iterations: int = 7, global_iterations: int = 4, global_step_deg: float = 30.0,
                 local_step_deg: float = 10.0, min_step_deg: float = 2.0, max_shift_vox: float = 4.0,
                 mask_radius_vox: float | None = None, tilt_range_deg=(-60.0, 60.0),
                 initial_lowpass_shell: float | None = None, seed: int = 0):
        self.iterations = iterations
        self.global_iterations = global_iterations
        self.global_step_deg = global_step_deg
        self.local_step_deg = local_step_deg
        self.min_step_deg = min_step_deg
        self.max_shift_vox = max_shift_vox
        self.mask_radius_vox = mask_radius_vox
        self.tilt_range_deg = tilt_range_deg
        self.initial_lowpass_shell = initial_lowpass_shell
        self.seed = seed

    def fit(self, particles: np.ndarray, voxel_size_A: float = 1.0, groups: np.ndarray | None = None,
            progress=None, tilt_ranges: np.ndarray | None = None) -> "SubtomogramAverager":
        """Align and average ``particles`` (N, b, b, b). ``groups`` (N,), optional: particles of one
        group always go to the same half set (see :func:`overlap_groups`). ``tilt_ranges`` (N, 2),
        optional: each particle's tilt range in degrees (its tomogram's; NaN: ``tilt_range_deg``).
        ``progress(done, total)``: called after each searched batch, counting particle alignments
        (particles × iterations)."""
        x = np.asarray(particles, np.float32)
        if x.ndim != 4 or len(set(x.shape[1:])) != 1:
            raise ValueError(f"particles must be (N, b, b, b), got {x.shape}")
        m, n = len(x), x.shape[1]
        if m < 2:
            raise ValueError("averaging needs at least 2 particles")
        radius = self.mask_radius_vox if self.mask_radius_vox is not None else n / 2 - 3
        ws = _workspace(n, radius, self.tilt_range_deg, self.max_shift_vox)
        ranges, wid = wedge_groups(tilt_ranges, self.tilt_range_deg, m)
        wedges = [wedge_mask(n, *(r if r is not None else (None, None))) for r in ranges]
        ws_of = [replace(ws, wedge=w) for w in wedges]  # one workspace per tilt range
        rng = np.random.default_rng(self.seed)
        half = half_sets(m, groups, rng)
        pft = sfft.rfftn(x * ws.mask, axes=(1, 2, 3), workers=_FFT_WORKERS).astype(np.complex64)
        for k, w in enumerate(wedges):
            pft[wid == k] *= w
        # spectral whitening: every shell weighs the same in the correlation (otherwise the lowest,
        # nearly rotation-invariant shells of a globular particle decide its orientation)
        pft *= _whitening(pft, replace(ws, wedge=np.max(wedges, axis=0)))
        wca = partial(wedge_compensated_average, ws=ws, wedges=wedges)

        identity = Rotation.identity(m)
        rotations = [identity[i] for i in range(m)]
        shifts = np.zeros((m, 3))
        scores = np.zeros(m)
        start = wca(x, identity, shifts, wedge_ids=wid)
        cutoff = self.initial_lowpass_shell if self.initial_lowpass_shell is not None else n / 6
        first_band_filter = lowpass_filter(n, cutoff)
        refs = {h: _normalise(start, ws.mask) for h in (1, 2)}
        grid = rotation_grid(self.global_step_deg)
        step = self.local_step_deg
        aligned = 0
        self.history_ = []
        for it in range(self.iterations):
            t0 = time.perf_counter()
            band = lowpass_filter(n, cutoff)
            if it < self.global_iterations and it > 0:
                # global searches use one common reference of both halves, limited to the first band:
                # it fixes a common frame (as RELION's low-passed initial model does); beyond that
                # band the halves stay independent, so the FSC there is not inflated
                common = _normalise(refs[1] + refs[2], ws.mask)
                refs_search = {h: common for h in (1, 2)}
            else:
                refs_search = refs
            for h in (1, 2):
                idx = np.flatnonzero(half == h)
                limit = first_band_filter if it < self.global_iterations else band
                ref = sfft.irfftn(sfft.rfftn(refs_search[h]) * limit, s=(n, n, n)).astype(np.float32)
                for c in range(0, len(idx), _CHUNK):  # bounded memory for classes of any size
                    chunk = idx[c: c + _CHUNK]
                    for w in np.unique(wid[chunk]):  # the reference under each particle's wedge
                        sub = chunk[wid[chunk] == w]
                        if it < self.global_iterations:
                            rot, sh, sc = search_global(pft[sub], ref, grid, limit, ws_of[w])
                        else:
                            cur = Rotation.concatenate([rotations[i] for i in sub])
                            rot, sh, sc = search_local(pft[sub], ref, cur, step, band, ws_of[w])
                        for k, i in enumerate(sub):
                            rotations[i] = rot[k]
                        shifts[sub], scores[sub] = sh, sc
                        aligned += len(sub)
                        if progress:
                            progress(aligned, m * self.iterations)
                all_rot = Rotation.concatenate([rotations[i] for i in idx])
                refs[h] = _normalise(wca(x[idx], all_rot, shifts[idx], wedge_ids=wid[idx]), ws.mask)
            if it >= self.global_iterations:
                step = max(self.min_step_deg, step / 2)
            curve = fsc(refs[1], refs[2], ws.mask)
            # next band limit: where the half maps still agree (0.143), plus two shells
            res_shell = n * 1.0 / resolution_at(curve, 0.143, 1.0, n)
            cutoff = float(np.clip(max(cutoff, res_shell + 2), 2, n // 2 - 1))
            self.history_.append({"iteration": it, "band_limit_shell": float(cutoff), "mean_score": float(scores.mean()),
                                  "global": it < self.global_iterations, "seconds": time.perf_counter() - t0})
            log.info("averaging iteration %d/%d: mean score %.3f, band limit %.1f shells (%.0f s)", it + 1,
                     self.iterations, scores.mean(), cutoff, time.perf_counter() - t0)

        self.rotations_ = Rotation.concatenate(rotations)
        self.shifts_, self.scores_, self.half_ = shifts, scores, half
        maps = [wca(x[half == h], self.rotations_[np.flatnonzero(half == h)], shifts[half == h], wedge_ids=wid[half == h])
                for h in (1, 2)]
        self.half_maps_ = [_normalise(v, ws.mask) for v in maps]
        self.average_ = _normalise(wca(x, self.rotations_, shifts, wedge_ids=wid), ws.mask)
        self.mask_ = ws.mask
        self.fsc_ = fsc(self.half_maps_[0], self.half_maps_[1], ws.mask)
        self.resolution_0143_A_ = resolution_at(self.fsc_, 0.143, voxel_size_A, n)
        self.resolution_05_A_ = resolution_at(self.fsc_, 0.5, voxel_size_A, n)
        return self


def align_volumes(moving: np.ndarray, fixed: np.ndarray, global_step_deg: float = 20.0, local_steps=(8.0, 4.0, 2.0, 1.0),
                  mask_radius_vox: float | None = None, max_shift_vox: float = 4.0, lowpass_shell: float | None = None):
    """Rotation ``Q`` and shift ``u`` (x, y, z voxels) with ``fixed ≈ transform_volume(moving, Q, u)``.

    Global grid search then local refinement, no wedge (both are averages). Returns (Q, u, correlation).
    """
    n = fixed.shape[0]
    radius = mask_radius_vox if mask_radius_vox is not None else n / 2 - 3
    ws = _workspace(n, radius, None, max_shift_vox)
    band = lowpass_filter(n, lowpass_shell if lowpass_shell is not None else n / 2 - 2)
    fixed_ft = sfft.rfftn((fixed * ws.mask)[None], axes=(1, 2, 3)).astype(np.complex64)
    rot, shift, score = search_global(fixed_ft, moving, rotation_grid(global_step_deg), band, ws)
    for step in local_steps:
        rot, shift, score = search_local(fixed_ft, moving, rot, step, band, ws)
    return rot[0], shift[0], float(score[0])


# ---------------------------------------------------------------- one class of a dataset, with files

def averager_from_settings(settings: dict, box_vox: int, voxel_size_A: float) -> SubtomogramAverager:
    """A :class:`SubtomogramAverager` from a configuration ``average`` section (keys left out: the
    schema's defaults)."""
    from discaflow.config import stage_defaults

    s = {**stage_defaults("average"), **settings}
    tmin, tmax, lowpass_A = s["tilt_min_deg"], s["tilt_max_deg"], s["initial_lowpass_A"]
    return SubtomogramAverager(
        iterations=s["iterations"], global_iterations=s["global_iterations"], global_step_deg=s["global_step_deg"],
        local_step_deg=s["local_step_deg"], min_step_deg=s["min_step_deg"], max_shift_vox=s["max_shift_vox"],
        mask_radius_vox=s["mask_radius_vox"],
        tilt_range_deg=None if tmin is None or tmax is None else (tmin, tmax),
        initial_lowpass_shell=None if not lowpass_A else box_vox * voxel_size_A / lowpass_A,
        seed=s["seed"])


def class_indices(store, labels_csv, classes) -> dict:
    """Sorted particle indices of each class in ``classes`` (None: every class) of the labels table,
    checked against the open ``store``; a missing class or one of fewer than 2 particles is an InputError."""
    from discaflow.errors import InputError
    from discaflow.io.tables import check_labels, read_table

    table = check_labels(read_table(labels_csv), store, labels_csv)
    present = set(table["rlnClassNumber"].tolist())
    out = {}
    for c in sorted(set(classes or present)):
        if c not in present:
            raise InputError(f"{labels_csv}: no particle of class {c}; it has classes {sorted(present)}")
        idx = np.sort(table.loc[table["rlnClassNumber"] == c, "dfParticleIndex"].to_numpy(np.int64))
        if len(idx) < 2:
            raise InputError(f"{labels_csv}: class {c} has {len(idx)} particle; averaging needs at least 2 "
                             "(leave the class out with --classes)")
        out[c] = idx
    return out


def check_average_inputs(store_path, labels_csv, classes, batch: int = 512) -> dict:
    """:func:`class_indices`, with every subtomogram of those classes read once to check it is finite:
    everything averaging of several classes reads, checked before the first class is written."""
    from discaflow.io.store import SubtomogramStore

    with SubtomogramStore(store_path) as store:
        out = class_indices(store, labels_csv, classes)
        every = np.sort(np.concatenate(list(out.values()))) if out else np.zeros(0, np.int64)
        for a in range(0, len(every), batch):
            store.take(every[a: a + batch], finite=True)
    return out


def run_average_class(store_path, labels_csv, class_number: int, out_dir, settings: dict,
                      tilt_ranges: dict | None = None) -> dict:
    """Align and average the particles of one class (1-based ``rlnClassNumber`` of the labels table).
    ``tilt_ranges``: tomogram name → (tilt_min_deg, tilt_max_deg) of the tomograms whose tilt range
    differs from the settings' (a tomogram sheet's); each particle gets its tomogram's wedge.

    Writes in ``out_dir``: ``average.mrc``, ``half1.mrc``, ``half2.mrc`` (voxel size of the store),
    ``fsc.csv`` (shell, resolution Å, FSC), ``fsc.png``, ``particles.csv`` (particle index, half,
    rotation as ZYZ Euler angles in degrees of the rotation applied to the average, shift in voxels
    of the store, score) and ``summary.json`` (counts, resolutions, timings) — ``summary.json`` last.
    """
    import json
    from pathlib import Path

    import pandas as pd

    from discaflow.fourier import shell_resolution_A
    from discaflow.io.atomic import atomic_path
    from discaflow.io.mrc import write_volume
    from discaflow.io.store import SubtomogramStore
    from discaflow.plots import plot_fsc

    out = Path(out_dir)
    t0 = time.perf_counter()
    with SubtomogramStore(store_path) as store:
        idx = class_indices(store, labels_csv, [class_number])[class_number]
        x = store.take(idx, finite=True)  # all read and checked before anything is written
        vs, b, binning = store.voxel_size_A, store.box_vox, store.binning
        coords, tomo = store.column("coords"), store.column("tomogram")
        coords, tomo = (coords[idx], tomo[idx]) if coords is not None else (None, None)
        names = store.tomogram_names
    particle_tilts = None
    if tilt_ranges and tomo is not None:
        particle_tilts = np.full((len(idx), 2), np.nan)
        for t, name in enumerate(names):
            if name in tilt_ranges:
                particle_tilts[tomo == t] = tilt_ranges[name]
    out.mkdir(parents=True, exist_ok=True)
    groups = None
    if coords is not None and len(coords) and np.isfinite(coords).all():
        # boxes overlap when centres are closer than one box (in unbinned pixels)
        groups = overlap_groups(coords, tomo, b * binning)
    from discaflow.progress import Progress

    averager = averager_from_settings(settings, b, vs)
    progress = Progress(f"class {class_number} alignment", len(idx) * averager.iterations, unit="particle alignments")
    av = averager.fit(x, vs, groups=groups, progress=progress.to, tilt_ranges=particle_tilts)
    progress.close()
    write_volume(out / "average.mrc", av.average_, vs)
    write_volume(out / "half1.mrc", av.half_maps_[0], vs)
    write_volume(out / "half2.mrc", av.half_maps_[1], vs)
    curve = pd.DataFrame({"shell": np.arange(len(av.fsc_)), "resolution_A": shell_resolution_A(b, vs), "fsc": av.fsc_})
    with atomic_path(out / "fsc.csv") as tmp:
        curve.to_csv(tmp, index=False)
    plot_fsc({f"class {class_number}": curve}, out / "fsc.png")
    euler = av.rotations_.as_euler("ZYZ", degrees=True)
    poses = pd.DataFrame({"dfParticleIndex": idx, "rlnClassNumber": class_number, "dfHalf": av.half_,
                          "dfEulerRot": euler[:, 0], "dfEulerTilt": euler[:, 1], "dfEulerPsi": euler[:, 2],
                          "dfShiftX": av.shifts_[:, 0], "dfShiftY": av.shifts_[:, 1], "dfShiftZ": av.shifts_[:, 2],
                          "dfScore": av.scores_})
    with atomic_path(out / "particles.csv") as tmp:
        poses.to_csv(tmp, index=False)
    summary = {"class": class_number, "particles": int(len(idx)), "voxel_size_A": vs, "box_vox": b,
               "tilt_ranges_deg": sorted({tuple(r) for r in particle_tilts.tolist() if not np.isnan(r).any()}) if particle_tilts is not None else [],
               "resolution_fsc0143_A": av.resolution_0143_A_, "resolution_fsc05_A": av.resolution_05_A_,
               "seconds": time.perf_counter() - t0, "seconds_per_particle": (time.perf_counter() - t0) / len(idx),
               "history": av.history_}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    log.info("class %d: %d particles, FSC 0.143 at %.1f Å, 0.5 at %.1f Å (%.0f s)", class_number, len(idx),
             av.resolution_0143_A_, av.resolution_05_A_, summary["seconds"])
    return summary


def collect_averages(class_dirs: dict, out_dir, class_names: dict | None = None) -> dict:
    """Merge per-class results: ``poses.csv`` (every aligned particle), ``summary.json`` (one entry
    per class), ``gallery.png`` (central slices of each average) and ``fsc.png`` (all FSC curves)."""
    import json
    from pathlib import Path

    import pandas as pd

    from discaflow.io.atomic import atomic_path
    from discaflow.io.mrc import read_volume
    from discaflow.plots import plot_class_gallery, plot_fsc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = class_names or {}
    poses, summaries, curves, vols, titles = [], [], {}, [], []
    for c in sorted(class_dirs):
        d = Path(class_dirs[c])
        s = json.loads((d / "summary.json").read_text())
        summaries.append({k: v for k, v in s.items() if k != "history"})
        poses.append(pd.read_csv(d / "particles.csv"))
        label = names.get(c, f"class {c}")
        curves[label] = pd.read_csv(d / "fsc.csv")
        vols.append(read_volume(d / "average.mrc").data)
        titles.append(f"{label}\n{s['particles']} particles\n{s['resolution_fsc0143_A']:.0f} Å")
    table = pd.concat(poses, ignore_index=True) if poses else pd.DataFrame(
        columns=["dfParticleIndex", "rlnClassNumber", "dfHalf", "dfEulerRot", "dfEulerTilt", "dfEulerPsi",
                 "dfShiftX", "dfShiftY", "dfShiftZ", "dfScore"])
    with atomic_path(out / "poses.csv") as tmp:
        table.sort_values("dfParticleIndex").to_csv(tmp, index=False)
    plot_class_gallery(vols, titles, out / "gallery.png")
    plot_fsc(curves, out / "fsc.png")
    result = {"classes": summaries}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result
