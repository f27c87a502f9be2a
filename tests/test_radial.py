"""Rotation-invariant descriptors: principal moments and polarity."""

import numpy as np

from discaflow.cluster.radial import polarity_of, principal_moments, radial_features


def _ellipsoid(b=24, axes=(1.5, 2.5, 4.0), value=-1.0):
    g = np.indices((b,) * 3) - b // 2
    inside = sum((g[i] / axes[i]) ** 2 for i in range(3)) <= 1
    return np.where(inside, value, 0.0)


def test_principal_moments_measure_shape_not_orientation_or_polarity():
    dark = _ellipsoid()
    turned = np.transpose(dark, (2, 0, 1))  # the same ellipsoid, long axis along another direction
    sphere = _ellipsoid(axes=(2.6, 2.6, 2.6))
    m = principal_moments(np.stack([dark, turned, sphere]))
    assert np.allclose(m[0], m[1])  # a rotation by 90° about a diagonal permutes the axes
    assert m[0, 2] / m[0, 0] > 1.8  # elongated (its long axis clipped by the 4-voxel radius of a 24³ box)
    assert m[2, 2] / m[2, 0] < 1.2  # round: three equal moments
    # a bright particle with polarity +1 gives what the dark one gives with -1
    assert np.allclose(principal_moments(-dark[None], polarity=1.0), m[:1])
    # nothing of the particle's sign near the centre: zeros, not NaN
    assert np.array_equal(principal_moments(-dark[None], polarity=-1.0), np.zeros((1, 3)))


def test_polarity_and_descriptor_layout():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((8, 24, 24, 24)) * 0.3
    dark = noise + _ellipsoid()
    assert polarity_of(dark) == -1.0 and polarity_of(-dark) == 1.0
    f = radial_features(dark)
    assert f.shape == (8, 27) and np.isfinite(f).all()
    # the last three are the principal moments, computed with the detected polarity
    assert np.allclose(f[:, 24:], principal_moments(dark, -1.0))
    assert np.allclose(radial_features(-dark)[:, 24:], f[:, 24:])
