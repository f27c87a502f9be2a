"""Labelled subtomogram sets: N per class, each a structure under a random proper rotation and shift,
imaged by :mod:`discaflow.simulate.imaging`, written to the HDF5 store (:mod:`discaflow.io.store`)."""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
from tqdm import tqdm

from discaflow.errors import InputError
from discaflow.geometry import euler_zyz_deg, random_rotations, transform_volume
from discaflow.io.store import StoreWriter
from discaflow.simulate.imaging import (Imaging, apply_filter, filter_power, filtered_noise, fourier_grid, imaging_filters,
                                        transfer_function)
from discaflow.simulate.structures import Structure

log = logging.getLogger(__name__)


def check_fits(structures: Sequence[Structure], box_vox: int, max_shift_vox: float) -> None:
    """Raise :class:`InputError` when a structure (plus the largest shift) does not fit the box."""
    for s in structures:
        need = s.radius_vox + max_shift_vox
        if need > box_vox // 2 - 1:
            raise InputError(
                f"{s.source}: structure radius {s.radius_vox * s.voxel_size_A:.0f} Å (+ shift "
                f"{max_shift_vox * s.voxel_size_A:.0f} Å) does not fit a {box_vox}-voxel box at "
                f"{s.voxel_size_A:g} Å/voxel; use box_vox >= {int(np.ceil(2 * (need + 1)))} or a larger voxel size"
            )


def place_in_box(structure: Structure, rotation, shift_xyz_vox, box_vox: int) -> np.ndarray:
    """The structure rotated about its centre and shifted, in a cubic box of ``box_vox`` voxels."""
    return transform_volume(structure.density, rotation, shift_xyz_vox, out_shape=(box_vox,) * 3, order=1)


def signal_variance(structures: Sequence[Structure], h: np.ndarray, box_vox: int, rng: np.random.Generator, n_orientations: int = 8) -> float:
    """Mean variance (over structures and random orientations) of an imaged, noise-free particle."""
    values = []
    for s in structures:
        rots = random_rotations(n_orientations, rng)
        vols = np.stack([place_in_box(s, rots[i], (0, 0, 0), box_vox) for i in range(n_orientations)])
        values.append(apply_filter(vols, h).var(axis=(1, 2, 3)).mean())
    return float(np.mean(values))


def noise_variance(structures: Sequence[Structure], imaging: Imaging, box_vox: int, seed: int) -> float:
    """The dataset's noise variance in a ``box_vox``³ subtomogram as it ends up (after every filter),
    from the mean imaged-particle variance and ``imaging.snr`` in its convention (see :mod:`imaging`)."""
    shape = (box_vox,) * 3
    h = transfer_function(shape, imaging, object_size_A=box_vox * imaging.voxel_size_A)
    rng = np.random.default_rng([seed, 7919])  # its own stream: the particles' stream is unaffected
    imaged = signal_variance(structures, h, box_vox, rng)
    if imaging.snr_convention == "final_volume":
        return imaged / imaging.snr
    # paper: each of the two noise sources gets half of signal / SNR before filtering, the signal
    # measured as its CTF- and wedge-filtered variance over the filter's gain on white noise
    per_source = 0.5 / imaging.snr * imaged / filter_power(h, box_vox)
    return per_source * filter_power(imaging_filters(shape, imaging, box_vox).noise, box_vox)


def final_snr(structures: Sequence[Structure], imaging: Imaging, box_vox: int, seed: int,
              band_shells: float | None = None, noise_var: float | None = None) -> float:
    """Signal variance / noise variance of the simulated subtomograms as written (mean over structures
    and random orientations); ``band_shells``: counting only Fourier shells ≤ that radius;
    ``noise_var``: :func:`noise_variance`'s value when the caller has it."""
    shape = (box_vox,) * 3
    f = imaging_filters(shape, imaging, box_vox)
    signal, noise = f.signal, f.noise
    if band_shells is not None:
        kz, ky, kx = fourier_grid(shape, 1.0)
        inside = (np.sqrt(kz**2 + ky**2 + kx**2) * box_vox <= band_shells).astype(np.float32)
        signal, noise = signal * inside, noise * inside
    rng = np.random.default_rng([seed, 7920])
    total_noise = noise_variance(structures, imaging, box_vox, seed) if noise_var is None else noise_var
    band_noise = total_noise * filter_power(noise, box_vox) / filter_power(f.noise, box_vox)
    return signal_variance(structures, signal, box_vox, rng) / band_noise


def simulate_subtomograms(
    structures: Sequence[Structure],
    out_path: str | os.PathLike,
    imaging: Imaging,
    per_class: int,
    box_vox: int = 24,
    max_shift_vox: float = 1.0,
    seed: int = 0,
    noise_seed: int = 1,
    dtype: str = "float16",
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Simulate ``per_class`` subtomograms of every structure into a store at ``out_path``.

    Subtomograms come in random class order; ground truth (label, Euler angles, shift) is stored
    alongside. ``seed`` fixes the particles (classes, rotations, shifts); the noise comes from its
    own stream, ``(seed, noise_seed)``, so the same particles can be drawn again with fresh noise.
    Returns a summary (counts, noise variance).
    """
    if per_class < 1:
        raise InputError(f"per_class must be >= 1, got {per_class}")
    for s in structures:
        if abs(s.voxel_size_A - imaging.voxel_size_A) > 1e-6:
            raise ValueError("structures must be loaded at the imaging voxel size")
    check_fits(structures, box_vox, max_shift_vox)
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 100 + noise_seed])
    b = box_vox
    filters = imaging_filters((b, b, b), imaging, b)
    noise_var = noise_variance(structures, imaging, b, seed)
    measured_snr = final_snr(structures, imaging, b, seed, noise_var=noise_var)  # = imaging.snr in final_volume (up to sampling)
    labels = rng.permutation(np.repeat(np.arange(len(structures)), per_class)).astype(np.int32)
    n = len(labels)
    rotations = random_rotations(n, rng)
    # shifts uniform in a ball of radius max_shift_vox
    direction = rng.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    shifts = direction * (max_shift_vox * rng.random(n) ** (1 / 3))[:, None]
    eulers = euler_zyz_deg(rotations)
    meta = {
        "simulation": {
            "imaging": vars(imaging), "box_vox": b, "max_shift_vox": max_shift_vox, "seed": seed, "noise_seed": noise_seed,
            "per_class": per_class, "noise_variance": noise_var, "final_volume_snr": measured_snr,
            "structures": [{"name": s.name, "source": os.path.basename(s.source)} for s in structures],
        }
    }
    with StoreWriter(out_path, b, imaging.voxel_size_A, dtype=dtype, class_names=[s.name for s in structures], metadata=meta) as w:
        for start in tqdm(range(0, n, batch_size), desc="simulate subtomograms", unit="batch", disable=not progress):
            idx = np.arange(start, min(n, start + batch_size))
            clean = np.stack([place_in_box(structures[labels[i]], rotations[int(i)], shifts[i], b) for i in idx])
            noisy = apply_filter(clean, filters.signal) + filtered_noise(clean.shape, filters.noise, noise_var, noise_rng)
            w.append(noisy, label=labels[idx], euler_deg=eulers[idx], shift_vox=shifts[idx])
    log.info("wrote %d subtomograms (%d classes) to %s", n, len(structures), out_path)
    return {"n": n, "classes": [s.name for s in structures], "noise_variance": noise_var, "final_volume_snr": measured_snr}
