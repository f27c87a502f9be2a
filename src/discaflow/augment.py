"""Self-supervision by random rotation: each subtomogram rotated by a uniformly random proper
rotation about its centre, with the corners the rotation brings in from outside the box filled with
N(0, 1) noise (subtomograms are normalised to zero mean and unit variance, so the fill matches).

Two defects of the reference implementation are avoided here: its rotations could be reflections,
and its noise fill never reached the rotated copies.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from discaflow.geometry import box_center, random_rotations

_REVERSE = np.eye(3)[::-1]


def rotate_with_noise_fill(volume: np.ndarray, matrix_xyz: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotate one cubic volume by a 3×3 rotation (x, y, z) about its centre; fill outside with N(0, 1).

    Returns the rotated volume and the boolean mask of filled voxels.
    """
    m = _REVERSE @ matrix_xyz.T @ _REVERSE
    c = box_center(volume.shape)
    offset = c - m @ c
    out = ndimage.affine_transform(volume, m, offset=offset, order=1, mode="constant", cval=np.nan, prefilter=False)
    filled = np.isnan(out)
    out[filled] = rng.standard_normal(int(filled.sum())).astype(out.dtype)
    return out, filled


def random_rotation_batch(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each volume of ``batch`` (n, b, b, b) under its own uniformly random proper rotation."""
    rots = random_rotations(len(batch), rng).as_matrix()
    out = np.empty_like(batch, dtype=np.float32)
    for i in range(len(batch)):
        out[i], _ = rotate_with_noise_fill(np.asarray(batch[i], np.float32), rots[i], rng)
    return out
