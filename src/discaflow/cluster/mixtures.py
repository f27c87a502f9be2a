"""The statistical half of DISCA: PCA of the features, Gaussian mixtures chosen by BIC, the
distortion-based Davies–Bouldin index (DDBI) and Hungarian label matching (the split and merge tests:
discaflow.cluster.splitting).

Numbers of clusters are chosen by the Bayesian information criterion (lower is better). For the K of
the previous iteration a mixture warm-started from the previous labels is fitted too, and the de
novo fit replaces it only if it has a higher likelihood (the DISCA paper).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits


def resolve_jobs(n_jobs: int | None) -> int:
    """Processes for :func:`parallel_map`: ``None`` or 1 → 1; -1 → every CPU this process may use
    (joblib.cpu_count: the affinity mask and cgroup quota, so a SLURM job's cpus-per-task); k > 1 → k."""
    if n_jobs is None or n_jobs == 1:
        return 1
    if n_jobs == -1:
        from joblib import cpu_count

        return max(1, int(cpu_count()))
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be -1 or a positive number of processes, got {n_jobs}")
    return int(n_jobs)


def _single_threaded(fn, *args):
    # every fit single-threaded (BLAS and scikit-learn's OpenMP k-means), in the main process as in a
    # worker, so that the sums run in the same order whatever n_jobs: same seed, same result
    with threadpool_limits(1):
        return fn(*args)


def parallel_map(fn, tasks, n_jobs: int | None = 1) -> list:
    """``[fn(*task) for task in tasks]`` on up to ``n_jobs`` processes (joblib's loky backend;
    :func:`resolve_jobs`), each call single-threaded. Every fit here is seeded by its arguments, so
    the results are identical for any ``n_jobs``. Why processes: scikit-learn's mixture fits on a few
    hundred to a few thousand vectors spend most of their time in Python, which threads would serialise."""
    tasks = [tuple(t) for t in tasks]
    n = min(resolve_jobs(n_jobs), len(tasks))
    if n <= 1:
        return [_single_threaded(fn, *t) for t in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n)(delayed(_single_threaded)(fn, *t) for t in tasks)


def fit_pca(features: np.ndarray, n_components: int = 16, seed: int = 0) -> PCA:
    """PCA of the features (full SVD: deterministic), at most min(N, D) components."""
    n = int(min(n_components, features.shape[0], features.shape[1]))
    return PCA(n_components=n, svd_solver="full", random_state=seed).fit(features.astype(np.float64))


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 in order of first value (empty clusters removed)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.int64)


def params_from_labels(z: np.ndarray, labels: np.ndarray, reg_covar: float = 1e-5):
    """Weights, means and precisions of one Gaussian per label (labels 0..K-1, none empty)."""
    k = int(labels.max()) + 1
    d = z.shape[1]
    weights = np.array([np.mean(labels == j) for j in range(k)])
    means = np.array([z[labels == j].mean(axis=0) for j in range(k)])
    precisions = []
    for j in range(k):
        zj = z[labels == j]
        cov = np.cov(zj.T) if len(zj) > 1 else np.zeros((d, d))
        precisions.append(np.linalg.inv(np.atleast_2d(cov) + reg_covar * np.eye(d)))
    return weights, means, np.array(precisions)


@dataclass
class MixtureFit:
    """One fitted mixture: its K, BIC, total log-likelihood, and whether it was warm-started."""

    k: int
    mixture: GaussianMixture
    bic: float
    loglik: float
    warm: bool


def _fit(z, k, seed, reg_covar, max_iter, init=None) -> MixtureFit:
    kwargs = {}
    if init is not None:
        w, m, p = init
        kwargs = {"weights_init": w, "means_init": m, "precisions_init": p}
    gm = GaussianMixture(n_components=k, covariance_type="full", reg_covar=reg_covar, max_iter=max_iter,
                         random_state=seed, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(z)
    return MixtureFit(k=k, mixture=gm, bic=float(gm.bic(z)), loglik=float(gm.score(z) * len(z)), warm=init is not None)


def fit_mixtures(z: np.ndarray, candidates, previous_labels: np.ndarray | None = None, reg_covar: float = 1e-5,
                 seed: int = 0, max_iter: int = 200, n_jobs: int | None = 1) -> tuple[MixtureFit, dict[int, MixtureFit]]:
    """Fit a full-covariance mixture for every candidate K; return the lowest-BIC fit and all fits.
    The fits run on ``n_jobs`` processes (:func:`parallel_map`; the result does not depend on it).

    With ``previous_labels`` (K_prev clusters), the K_prev mixture is also warm-started from them and
    the de novo fit is kept only if its likelihood is higher.
    """
    k_prev = int(previous_labels.max()) + 1 if previous_labels is not None and len(previous_labels) else None
    ks = [k for k in sorted(set(int(c) for c in candidates)) if 1 <= k <= len(z)]
    tasks = [(z, k, seed, reg_covar, max_iter) for k in ks]
    if k_prev in ks:
        tasks.append((z, k_prev, seed, reg_covar, max_iter, params_from_labels(z, previous_labels, reg_covar)))
    done = parallel_map(_fit, tasks, n_jobs)
    fits: dict[int, MixtureFit] = dict(zip(ks, done))
    if k_prev in ks:
        warm = done[-1]
        if warm.loglik >= fits[k_prev].loglik:
            fits[k_prev] = warm
    if not fits:
        raise ValueError("no candidate number of clusters fits the data")
    best = min(fits.values(), key=lambda f: (f.bic, f.k))
    return best, fits


def ddbi(z: np.ndarray, labels: np.ndarray, reg_covar: float = 1e-5) -> float:
    """Distortion-based Davies–Bouldin index (DISCA SI, Eq. 1): lower means better separated.

    For clusters i, j with means μ and precisions P (inverse covariances): T_i is the mean squared
    Mahalanobis distance of i's members to μ_i under P_i; D_ij = (μ_j − μ_i)ᵀ P_i (μ_j − μ_i);
    R_ij = (T_i + T_j) / (D_ij + D_ji); DDBI = mean over j of max over i ≠ j of R_ij.
    """
    labels = relabel_consecutive(labels)
    k = int(labels.max()) + 1
    if k < 2:
        return float("inf")
    _, means, prec = params_from_labels(z, labels, reg_covar)
    t = np.array([np.mean(np.einsum("nd,de,ne->n", z[labels == i] - means[i], prec[i], z[labels == i] - means[i]))
                  for i in range(k)])
    diff = means[None, :, :] - means[:, None, :]  # diff[i, j] = μ_j − μ_i
    d = np.einsum("ijd,ide,ije->ij", diff, prec, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (t[:, None] + t[None, :]) / (d + d.T)
    np.fill_diagonal(r, -np.inf)
    return float(np.mean(np.max(r, axis=0)))


def match_labels(reference: np.ndarray, labels: np.ndarray, consecutive: bool = True) -> np.ndarray:
    """Renumber ``labels`` to agree best with ``reference`` (Hungarian algorithm on the overlaps).

    Works for different numbers of clusters: unmatched clusters get the next free numbers. With
    ``consecutive`` the result is renumbered 0..K-1 (keeping the matched order) when the numbers of
    clusters differ and the matched numbers leave gaps.
    """
    labels = relabel_consecutive(labels)
    ref = np.asarray(reference)
    k_new, k_ref = int(labels.max()) + 1, int(ref.max()) + 1
    overlap = np.zeros((k_new, k_ref), np.int64)
    np.add.at(overlap, (labels, ref), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.full(k_new, -1, np.int64)
    mapping[rows] = cols
    free = iter(range(k_ref, k_ref + k_new))
    for j in range(k_new):
        if mapping[j] < 0:
            mapping[j] = next(free)
    out = mapping[labels]
    return relabel_consecutive(out) if consecutive and out.max() >= k_new else out


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of equal labels after matching ``b`` to ``a``."""
    return float(np.mean(match_labels(a, b, consecutive=False) == a))


def mixture_from_labels(z: np.ndarray, labels: np.ndarray, reg_covar: float = 1e-5, seed: int = 0) -> GaussianMixture:
    """A Gaussian mixture with one component per label (its members' weight, mean and covariance),
    refined by one EM step, so that it reproduces the labels as posteriors (labels 0..K-1)."""
    w, m, p = params_from_labels(z, labels, reg_covar)
    gm = GaussianMixture(len(w), covariance_type="full", reg_covar=reg_covar, weights_init=w, means_init=m,
                         precisions_init=p, max_iter=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(z)
    return gm


def fit_sample(n: int, size: int, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a seeded random sample of ``size`` of ``n`` items; None when ``size`` is 0
    or at least ``n`` (fit on all)."""
    if size <= 0 or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def assign_by_gaussians(fitted: np.ndarray, labels: np.ndarray, features: np.ndarray,
                        reg_covar: float = 1e-5) -> np.ndarray:
    """Labels of ``features`` (M × d) by one full-covariance Gaussian per label of ``fitted`` (N × d,
    ``labels`` 0..K-1, none empty), maximum posterior. Each cluster's covariance is shrunk towards the
    pooled within-cluster covariance by d + 1 pseudo-members (regularised discriminant analysis): a
    cluster with about d members has a singular covariance of its own, which would claim nothing
    outside its members' hyperplane."""
    fitted, labels = np.asarray(fitted, np.float64), np.asarray(labels)
    k, d = int(labels.max()) + 1, fitted.shape[1]
    sizes = np.bincount(labels, minlength=k)
    means = np.array([fitted[labels == j].mean(axis=0) for j in range(k)])
    scatter = np.array([(fitted[labels == j] - means[j]).T @ (fitted[labels == j] - means[j]) for j in range(k)])
    pooled = scatter.sum(0) / max(len(labels) - k, 1)
    covs = (scatter + (d + 1) * pooled) / (sizes + d + 1)[:, None, None] + reg_covar * np.eye(d)
    return mixture_from_params(sizes / sizes.sum(), means, covs).predict(np.asarray(features, np.float64))


def mixture_from_params(weights, means, covariances) -> GaussianMixture:
    """A fitted full-covariance GaussianMixture with these parameters (for predict / predict_proba)."""
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gm = GaussianMixture(n_components=len(weights), covariance_type="full")
    gm.weights_, gm.means_, gm.covariances_ = np.asarray(weights), np.asarray(means), np.asarray(covariances)
    gm.precisions_cholesky_ = _compute_precision_cholesky(gm.covariances_, "full")
    gm.precisions_ = np.array([c @ c.T for c in gm.precisions_cholesky_])
    gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, 0.0
    return gm
