"""Rotation conventions: proper, uniform, and the volume moves the way the rotation says."""

import numpy as np
from scipy.spatial.transform import Rotation

from discaflow.geometry import (box_center, euler_zyz_deg, random_rotations, rotation_from_euler_zyz_deg,
                                transform_volume)


def test_random_rotations_are_proper_and_uniform():
    rots = random_rotations(20000, np.random.default_rng(0))
    assert np.allclose(np.linalg.det(rots.as_matrix()), 1.0)
    # Haar measure: the rotation angle w has density (1 - cos w) / pi on [0, pi]
    w = rots.magnitude()
    hist, edges = np.histogram(w, bins=10, range=(0, np.pi))
    expected = np.diff(edges - np.sin(edges)) / np.pi * len(w)
    assert np.all(np.abs(hist - expected) < 5 * np.sqrt(expected))
    # rotated z axes cover the sphere uniformly: mean of each coordinate ~ 0
    z = rots.apply([0, 0, 1])
    assert np.all(np.abs(z.mean(0)) < 0.03)


def test_euler_round_trip():
    rots = random_rotations(100, np.random.default_rng(1))
    back = rotation_from_euler_zyz_deg(euler_zyz_deg(rots))
    assert np.allclose(back.as_matrix(), rots.as_matrix(), atol=1e-9)


def test_transform_volume_moves_points_as_the_rotation_says():
    vol = np.zeros((15, 15, 15), np.float32)
    c = box_center(vol.shape).astype(int)
    vol[c[0], c[1], c[2] + 4] = 1.0  # a point at x = +4
    rot = Rotation.from_euler("z", 90, degrees=True)  # x -> y
    out = transform_volume(vol, rot)
    z, y, x = np.unravel_index(np.argmax(out), out.shape)
    assert (x - c[2], y - c[1], z - c[0]) == (0, 4, 0)
    shifted = transform_volume(vol, None, shift_xyz_vox=(0, 0, 2))
    z, y, x = np.unravel_index(np.argmax(shifted), shifted.shape)
    assert (x - c[2], y - c[1], z - c[0]) == (4, 0, 2)
