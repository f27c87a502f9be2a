"""Whole simulated tomograms: particles of several classes placed without overlap, optional
distractors (membrane vesicles and small blobs), imaged like the subtomogram sets, with a
ground-truth particle table.

Ground-truth positions are the particles' centres of mass, ``(x, y, z)`` in voxels of the
tomogram, 0-based (voxel i spans i − 0.5 … i + 0.5); array indexing is ``[z, y, x]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from discaflow.errors import InputError
from discaflow.geometry import euler_zyz_deg, random_rotations, transform_volume
from discaflow.simulate.imaging import Imaging, apply_filter, filtered_noise, imaging_filters
from discaflow.simulate.structures import Structure

log = logging.getLogger(__name__)


@dataclass
class SimulatedTomogram:
    """A simulated tomogram (imaged, ``[z, y, x]``), its noise-free density and the ground truth."""

    name: str
    tomogram: np.ndarray
    clean: np.ndarray
    particles: pd.DataFrame
    voxel_size_A: float


def _place_positions(radii: np.ndarray, shape_zyx, rng, blocked, max_tries: int = 2000) -> np.ndarray:
    """Random centres (z, y, x) for spheres of ``radii`` inside the volume, none overlapping.

    ``blocked(p, r)`` tells whether a sphere at p with radius r hits a distractor.
    """
    placed, placed_r = [], []
    lo = radii[:, None]
    for i, r in enumerate(radii):
        hi = np.array(shape_zyx, float) - 1 - r
        if np.any(hi < r):
            raise InputError(f"a particle of radius {r:.1f} voxels does not fit a tomogram of shape {tuple(shape_zyx)} (z, y, x); enlarge shape_xyz_vox")
        for _ in range(max_tries):
            p = lo[i] + rng.random(3) * (hi - lo[i])
            if placed:
                d = np.linalg.norm(np.asarray(placed) - p, axis=1)
                if np.any(d < np.asarray(placed_r) + r + 1.0):
                    continue
            if blocked(p, r):
                continue
            placed.append(p)
            placed_r.append(r)
            break
        else:
            raise InputError(
                f"could not place {len(radii)} particles without overlap (placed {len(placed)}); "
                "lower particles_per_class or enlarge shape_xyz_vox"
            )
    return np.asarray(placed)


def _add_local(volume: np.ndarray, patch: np.ndarray, corner_zyx) -> None:
    """Add ``patch`` into ``volume`` with its first voxel at ``corner_zyx`` (clipped at the edges)."""
    sl_v, sl_p = [], []
    for c, n, m in zip(corner_zyx, volume.shape, patch.shape):
        a, b = max(c, 0), min(c + m, n)
        if a >= b:
            return
        sl_v.append(slice(a, b))
        sl_p.append(slice(a - c, b - c))
    volume[tuple(sl_v)] += patch[tuple(sl_p)]


def simulate_tomogram(
    structures: Sequence[Structure],
    imaging: Imaging,
    shape_xyz_vox=(256, 256, 128),
    particles_per_class: int = 20,
    vesicles: int = 1,
    blobs: int = 20,
    box_vox: int = 24,
    noise_var: float | None = None,
    seed: int = 0,
    name: str = "tomo_000",
) -> SimulatedTomogram:
    """Simulate one tomogram. ``noise_var`` (from the matching subtomogram set) fixes the noise level;
    by default it is derived from the structures, ``imaging.snr`` and ``box_vox`` the same way."""
    from discaflow.simulate.subtomograms import noise_variance

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape_xyz_vox[::-1])  # (z, y, x)
    clean = np.zeros(shape, np.float32)
    zz, yy, xx = (np.arange(n, dtype=np.float32) for n in shape)

    # Distractors first: vesicles (spherical lipid bilayers, 2 leaflets ~4 nm apart) and blobs.
    ves = []
    for _ in range(vesicles):
        radius = rng.uniform(0.15, 0.3) * min(shape[1:])
        center = np.array([rng.uniform(0, shape[0]), rng.uniform(radius, shape[1] - radius), rng.uniform(radius, shape[2] - radius)])
        ves.append((center, radius))
        dist = np.sqrt((zz[:, None, None] - center[0]) ** 2 + (yy[None, :, None] - center[1]) ** 2 + (xx[None, None, :] - center[2]) ** 2) - radius
        d_A = dist * imaging.voxel_size_A
        leaflet = 20.0  # Å from the membrane mid-plane to each head-group layer
        clean += 0.6 * (np.exp(-0.5 * ((d_A - leaflet) / 8.0) ** 2) + np.exp(-0.5 * ((d_A + leaflet) / 8.0) ** 2)).astype(np.float32)
    membrane_half_A = 40.0

    def blocked(p, r):
        for c, rad in ves:
            if abs(np.linalg.norm(p - c) - rad) < r + membrane_half_A / imaging.voxel_size_A:
                return True
        return False

    labels = rng.permutation(np.repeat(np.arange(len(structures)), particles_per_class)).astype(np.int32)
    radii = np.array([structures[k].radius_vox + 1.0 for k in labels])
    n_blobs = int(blobs)
    blob_r = rng.uniform(1.5, 3.0, n_blobs)
    all_r = np.concatenate([radii, blob_r + 1.0])
    order = np.argsort(-all_r, kind="stable")  # big ones first: fewer failed placements
    pos_sorted = _place_positions(all_r[order], shape, rng, blocked) if len(all_r) else np.zeros((0, 3))
    pos = np.empty_like(pos_sorted)
    pos[order] = pos_sorted
    part_pos, blob_pos = pos[: len(labels)], pos[len(labels):]

    rotations = random_rotations(len(labels), rng) if len(labels) else None
    for i, k in enumerate(labels):
        s = structures[k]
        n = s.density.shape[0]
        base = np.floor(part_pos[i]).astype(int)
        frac = part_pos[i] - base  # (z, y, x) sub-voxel part
        patch = transform_volume(s.density, rotations[i], shift_xyz_vox=frac[::-1], order=1)
        _add_local(clean, patch, base - n // 2)
    for p, r in zip(blob_pos, blob_r):
        n = int(np.ceil(3 * r)) * 2 + 1
        g = np.arange(n) - n // 2
        base = np.floor(p).astype(int)
        frac = p - base
        d2 = (g[:, None, None] - frac[0]) ** 2 + (g[None, :, None] - frac[1]) ** 2 + (g[None, None, :] - frac[2]) ** 2
        amp = rng.uniform(0.3, 0.8)
        _add_local(clean, (amp * np.exp(-0.5 * d2 / (0.5 * r) ** 2)).astype(np.float32), base - n // 2)

    if noise_var is None:
        noise_var = noise_variance(structures, imaging, box_vox, seed)
    filters = imaging_filters(shape, imaging, box_vox)
    tomo = apply_filter(clean, filters.signal) + filtered_noise(shape, filters.noise, noise_var, rng)

    eul = euler_zyz_deg(rotations) if len(labels) else np.zeros((0, 3))
    xyz = part_pos[:, ::-1]
    table = pd.DataFrame({
        "rlnTomoName": name,
        "rlnCoordinateX": xyz[:, 0], "rlnCoordinateY": xyz[:, 1], "rlnCoordinateZ": xyz[:, 2],
        "dfCoordinateXAngst": xyz[:, 0] * imaging.voxel_size_A,
        "dfCoordinateYAngst": xyz[:, 1] * imaging.voxel_size_A,
        "dfCoordinateZAngst": xyz[:, 2] * imaging.voxel_size_A,
        "rlnAngleRot": eul[:, 0], "rlnAngleTilt": eul[:, 1], "rlnAnglePsi": eul[:, 2],
        "rlnClassNumber": labels + 1,
        "dfClassName": [structures[k].name for k in labels],
        "dfRadiusAngst": [structures[k].radius_vox * imaging.voxel_size_A for k in labels],
        "rlnImagePixelSize": imaging.voxel_size_A,
    })
    return SimulatedTomogram(name=name, tomogram=tomo, clean=clean, particles=table, voxel_size_A=imaging.voxel_size_A)
