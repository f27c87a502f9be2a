"""Rotation-invariant descriptors of subtomograms ("radial descriptors"): the radial density profile
and the log radial power spectrum about the box centre, and the principal second moments of the
particle's density near the centre. Cheap, classical, and blind to a particle's orientation; used by
DISCA's warm-up clustering and radial split and merge tests (em.DiscaParams.k_strategy "radial") and by
the benchmarks' classical comparator (bench/baseline.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from discaflow.fourier import centre_radii

# The principal second moments are taken of the density smoothed by a Gaussian of MOMENT_SIGMA_VOX
# voxels, the particle's sign made positive and clipped at zero, within MOMENT_RADIUS_FRACTION of the
# box edge from the centre (4 voxels in a 24³ box). Why: particles of similar mass have similar radial
# profiles and spectra but differ in shape (a ring, a cube, an elongated complex), which the three
# moments of inertia of their core measure: on the K check's 8 classes cluster_radial went from K = 5
# (0.667) to K = 8 (0.949) with them (bench/results disca_radial_*_8classes_moments*); at a 5-voxel
# radius K = 5–7, at 3–4 voxels K = 8.
MOMENT_SIGMA_VOX = 1.0
MOMENT_RADIUS_FRACTION = 1 / 6


def principal_moments(x: np.ndarray, polarity: float = -1.0) -> np.ndarray:
    """(n, b, b, b) → (n, 3) float64: eigenvalues (ascending, voxels²) of the second-moment tensor of
    each subtomogram's density about its centre of mass, taken of ``polarity`` × the density smoothed by
    MOMENT_SIGMA_VOX, clipped at zero, within MOMENT_RADIUS_FRACTION × b of the box centre.
    ``polarity`` −1: particles dark (dense = negative, as in raw tomograms); +1: bright."""
    x = np.asarray(x)
    b = x.shape[1]
    grid = (np.indices((b,) * 3) - b // 2).reshape(3, -1).astype(np.float64)
    inside = (centre_radii(b) <= MOMENT_RADIUS_FRACTION * b).ravel()
    grid = grid[:, inside]
    out = np.empty((len(x), 3))
    for i in range(len(x)):
        w = np.clip(polarity * ndimage.gaussian_filter(x[i].astype(np.float64), MOMENT_SIGMA_VOX), 0, None).ravel()[inside]
        m = w.sum()
        if m <= 0:  # nothing of the particle's sign near the centre
            out[i] = 0.0
            continue
        d = grid - (grid @ w / m)[:, None]
        out[i] = np.linalg.eigvalsh((d * w) @ d.T / m)
    return out


def polarity_of(x: np.ndarray) -> float:
    """−1 when the subtomograms' centres (within 2 voxels, where picked particles sit) are on average
    darker than their boxes (dense = negative, raw tomograms), else +1."""
    x = np.asarray(x, np.float64)
    centre = centre_radii(x.shape[1]) <= 2
    return -1.0 if x[:, centre].mean() < x.mean() else 1.0


def radial_features(x: np.ndarray, polarity: float | None = None) -> np.ndarray:
    """(n, b, b, b) → (n, b + 3) float64: log radial power spectrum (b/2 shells of 1 Fourier voxel),
    radial mean density (b/2 shells of 1 voxel about the centre voxel b // 2) and the three
    principal_moments. ``polarity`` None: polarity_of(x)."""
    x = np.asarray(x)
    n, b = len(x), x.shape[1]
    r = np.rint(centre_radii(b)).astype(int).ravel()
    counts = np.bincount(r)
    shells = b // 2
    out = np.empty((n, 2 * shells + 3))
    for i in range(n):
        power = np.abs(np.fft.fftshift(np.fft.fftn(x[i]))) ** 2
        out[i, :shells] = np.log(np.bincount(r, power.ravel())[:shells] / counts[:shells] + 1e-12)
        out[i, shells:2 * shells] = (np.bincount(r, x[i].ravel()) / counts)[:shells]
    out[:, 2 * shells:] = principal_moments(x, polarity_of(x) if polarity is None else polarity)
    return out


def standardised(f: np.ndarray) -> np.ndarray:
    """Each feature (column) scaled to zero mean and unit variance over the rows."""
    return (f - f.mean(0)) / (f.std(0) + 1e-12)


def store_radial_features(store, batch_size: int = 256, standardise: bool = True) -> np.ndarray:
    """radial_features of every subtomogram of a SubtomogramStore, read in batches, with one polarity
    for the store (polarity_of its first 1,024 subtomograms); with ``standardise`` each feature scaled
    to zero mean and unit variance over the store."""
    polarity = polarity_of(store.read(0, min(len(store), 1024)))
    f = np.concatenate([radial_features(store.read(s, s + batch_size), polarity) for s in range(0, len(store), batch_size)])
    return standardised(f) if standardise else f


def cluster_radial(features: np.ndarray, candidates, pca_components: int = 16, split_dims: int = 24,
                   seed: int = 0, reg_covar: float = 1e-5, max_rounds: int = 8, max_parts: int | None = None,
                   n_jobs: int | None = 1, max_fit: int = 0) -> np.ndarray:
    """Classical clustering of (standardised) radial descriptors: PCA to ``pca_components``, the
    Gaussian mixture with the lowest BIC over ``candidates`` K (mixtures.fit_mixtures) among those whose
    every cluster has more members than dimensions (else the smallest K), then every cluster
    tested again for 2 to ``max_parts`` (default splitting.SPLIT_MAX_PARTS) populations in its own PCA to
    ``split_dims`` dimensions (at most the descriptor's) with one full vs several tied Gaussians
    (splitting.split_clusters), repeated until no cluster splits, at most ``max(candidates)`` clusters.
    The fits run on ``n_jobs`` processes (mixtures.parallel_map; the labels do not depend on it).
    With ``max_fit`` > 0 and more subtomograms than that, all of this is fitted to a seeded random
    sample of ``max_fit`` and every subtomogram then assigned by one Gaussian per cluster
    (mixtures.assign_by_gaussians). Returns labels 0..K-1.

    Why the recursive split: the global mixture sees the large differences between classes (the
    ribosome against RuBisCO) and merges small ones (the 20S proteasome and its capped form, whose
    radial profiles differ at a few radii only); inside the merged cluster that difference is the
    largest one (Table 1 set × 200, SNR 0.1: global BIC K = 3, 0.648; after the split K = 5, 0.993).
    """
    from discaflow.cluster.mixtures import assign_by_gaussians, fit_mixtures, fit_pca, fit_sample, relabel_consecutive
    from discaflow.cluster.splitting import SPLIT_MAX_PARTS, split_clusters

    sample = fit_sample(len(features), max_fit, seed)
    if sample is not None:
        fitted = cluster_radial(features[sample], candidates, pca_components, split_dims, seed, reg_covar, max_rounds,
                                max_parts, n_jobs)
        return relabel_consecutive(assign_by_gaussians(features[sample], fitted, features, reg_covar))

    max_parts = SPLIT_MAX_PARTS if max_parts is None else max_parts

    features = np.asarray(features, np.float64)
    candidates = sorted(set(int(k) for k in candidates))
    z = fit_pca(features, pca_components, seed).transform(features)
    _, fits = fit_mixtures(z, candidates, reg_covar=reg_covar, seed=seed, n_jobs=n_jobs)
    labels = None
    for fit in sorted(fits.values(), key=lambda f: f.bic):
        labels = fit.mixture.predict(z)
        sizes = np.bincount(labels)
        # a full-covariance Gaussian of d dimensions fitted to d or fewer members is singular, and its
        # likelihood can beat any honest fit (measured: 2 classes × 40 gave K = 6–8 without this rule)
        if sizes[sizes > 0].min() > z.shape[1]:
            break
    else:
        labels = min(fits.values(), key=lambda f: f.k).mixture.predict(z)
    labels = relabel_consecutive(labels)
    for r in range(max_rounds):
        labels, records = split_clusters(features, labels, dims=split_dims, seed=seed + r, reg_covar=reg_covar,
                                         max_clusters=max(candidates), covariance_type="tied", max_parts=max_parts,
                                         n_jobs=n_jobs)
        if not any(rec["split"] for rec in records):
            break
    return relabel_consecutive(labels)
