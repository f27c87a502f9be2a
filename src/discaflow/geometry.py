"""Rotations and rigid transforms of volumes.

Conventions used everywhere in discaflow:

* Volumes are NumPy arrays indexed ``[z, y, x]`` (as mrcfile returns them); vectors, shifts and
  coordinates are written ``(x, y, z)``.
* The centre of a box of n voxels is voxel ``n // 2`` on each axis (the FFT origin after
  ``fftshift``, as RELION defines it).
* A rotation ``R`` (``scipy.spatial.transform.Rotation``) acts on the object: a point ``r`` of the
  reference (relative to the box centre) moves to ``R r``. Euler angles are intrinsic ZYZ in degrees,
  ``(rot, tilt, psi) = R.as_euler("ZYZ", degrees=True)``, i.e. ``R = Rz(rot) Ry(tilt) Rz(psi)``.
  Only proper rotations (det +1) are ever generated: no reflections.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

_REVERSE = np.eye(3)[::-1]  # (x, y, z) <-> (z, y, x)


def random_rotations(n: int, rng: np.random.Generator) -> Rotation:
    """``n`` rotations drawn uniformly from SO(3) (Haar measure); never reflections."""
    return Rotation.random(n, rng=rng)


def box_center(shape) -> np.ndarray:
    """Centre voxel ``(z, y, x)`` of an array of this shape (``n // 2`` per axis)."""
    return np.array([s // 2 for s in shape], dtype=float)


def euler_zyz_deg(rotation: Rotation) -> np.ndarray:
    """Intrinsic ZYZ Euler angles (rot, tilt, psi) in degrees, shape (..., 3)."""
    return rotation.as_euler("ZYZ", degrees=True)


def rotation_from_euler_zyz_deg(angles) -> Rotation:
    """Inverse of :func:`euler_zyz_deg`."""
    return Rotation.from_euler("ZYZ", angles, degrees=True)


def transform_volume(
    volume: np.ndarray,
    rotation: Rotation | None = None,
    shift_xyz_vox=(0.0, 0.0, 0.0),
    out_shape=None,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Rotate ``volume`` about its centre by ``rotation``, then shift it by ``shift_xyz_vox``.

    The result has shape ``out_shape`` (default: the input shape) with the input's centre mapped to
    the output's centre plus the shift. Interpolation order 1 (trilinear) by default; voxels that
    come from outside the input are ``cval``.
    """
    volume = np.asarray(volume, dtype=np.float32)
    out_shape = tuple(volume.shape if out_shape is None else out_shape)
    m_xyz = np.eye(3) if rotation is None else rotation.as_matrix()
    # output index o (z,y,x) -> input index i = M (o - c_out - s) + c_in, with M = R^T in zyx order
    m = _REVERSE @ m_xyz.T @ _REVERSE
    shift_zyx = np.asarray(shift_xyz_vox, dtype=float)[::-1]
    offset = box_center(volume.shape) - m @ (box_center(out_shape) + shift_zyx)
    return ndimage.affine_transform(
        volume, m, offset=offset, output_shape=out_shape, order=order, mode="constant", cval=cval,
        prefilter=order > 1,
    )
