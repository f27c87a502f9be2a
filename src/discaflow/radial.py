"""Rotation-invariant radial descriptors of subtomograms: the radial density profile and the log radial
power spectrum about the box centre. Cheap, classical, and blind to a particle's orientation; used by
DISCA's optional radial split test (em.DiscaParams.radial_split) and by the benchmarks' classical
comparator (bench/baseline.py)."""

from __future__ import annotations

import numpy as np

from discaflow.fourier import centre_radii


def radial_features(x: np.ndarray) -> np.ndarray:
    """(n, b, b, b) → (n, b) float64: log radial power spectrum (b/2 shells of 1 Fourier voxel) and
    radial mean density (b/2 shells of 1 voxel about the centre voxel b // 2)."""
    x = np.asarray(x)
    n, b = len(x), x.shape[1]
    r = np.rint(centre_radii(b)).astype(int).ravel()
    counts = np.bincount(r)
    shells = b // 2
    out = np.empty((n, 2 * shells))
    for i in range(n):
        power = np.abs(np.fft.fftshift(np.fft.fftn(x[i]))) ** 2
        out[i, :shells] = np.log(np.bincount(r, power.ravel())[:shells] / counts[:shells] + 1e-12)
        out[i, shells:] = (np.bincount(r, x[i].ravel()) / counts)[:shells]
    return out


def standardised(f: np.ndarray) -> np.ndarray:
    """Each feature (column) scaled to zero mean and unit variance over the rows."""
    return (f - f.mean(0)) / (f.std(0) + 1e-12)


def store_radial_features(store, batch_size: int = 256, standardise: bool = True) -> np.ndarray:
    """radial_features of every subtomogram of a SubtomogramStore, read in batches; with
    ``standardise`` each feature scaled to zero mean and unit variance over the store."""
    f = np.concatenate([radial_features(store.read(s, s + batch_size)) for s in range(0, len(store), batch_size)])
    return standardised(f) if standardise else f
