"""The statistical half of DISCA: PCA of the features, Gaussian mixtures chosen by BIC, the
distortion-based Davies–Bouldin index (DDBI) and Hungarian label matching.

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


# Restarts of each two-Gaussian fit in split_clusters. Measured (2026-12-02) on a cluster of 94 capped
# and 99 plain 20S proteasomes, radial descriptors, 24 dimensions, tied covariance: with 3 restarts 4
# of 8 seeds reached the clean split (log-likelihood -1972, BIC gain +173) and the others a worse
# optimum (-2093 to -2097, gain -74), so the stability check (a second fit from another seed) refused
# the split at random; with 10 restarts all 8 seeds reached -1972. Raised to 30 (2026-12-03): in the
# K check's 8 distinct classes (bench/README.md) the merge test joined two pure classes of 100 (1s3x and
# 3gl1, the two smallest) in one E-step of the loop because the two-part fit of their union found the
# wrong optimum (BIC gain -65 instead of +148): 5 of 40 seeds with 10 restarts (k-means starts that cut
# along the within-class spread), 0 of 40 with 30; k-means++ or random starts and whitening failed
# more often (throw-away script, 20–40 seeds each).
SPLIT_N_INIT = 30
# The least BIC gain (BIC of one Gaussian − BIC of two) for which split_clusters splits a cluster:
# above 10 is "very strong" evidence on Kass & Raftery's (1995) scale. Measured (2026-12-02) on 3
# classes × 50 (tiny network, 16³): with any positive gain, pure clusters were split at gains of 0.4 to
# 7.8 (K = 4 instead of 3 for two of three simulation seeds); the splits DISCA needs gained 21 to 490
# (network and radial descriptors, 5 × 100 runs, bench/README.md).
SPLIT_MIN_BIC_GAIN = 10.0
# The most parts split_clusters cuts a cluster into at once in DISCA's radial split test and
# radial.cluster_radial. Measured (throw-away scripts, 2026-12-02; the K check's 8 classes × 100, SNR 0.1,
# radial descriptors with principal moments, 24 dimensions): the four small complexes (RuBisCO, p97,
# ClpB, Cand1–Cul1) form one cluster of 400 after the global mixture; two parts at a time split off
# one 101 and then declined to split the other 299 (cluster_radial K = 6, homogeneity 0.799), while tied
# mixtures of 2–6 Gaussians on the 400 have their lowest BIC at 4 parts (homogeneity 0.85 of the 400)
# and cluster_radial with up to four parts reached K = 8, 0.949; on the 5- and 3-class sets K = 5 and 3
# either way.
SPLIT_MAX_PARTS = 4
# The most members split_clusters fits a cluster's (or, in merge_clusters, a pair's) mixtures to: a
# larger cluster is tested on a random sample of this many (seeded), and the fitted mixture then labels
# every member. Why: (1) cost — every test fits SPLIT_N_INIT restarts of 2 to SPLIT_MAX_PARTS parts, and
# the merge test one union per pair of clusters, each fit's cost growing with its members; capped, one
# E-step's split + merge tests took ~10 min at 200,000 on 2 shared cores before the fits were made
# single-threaded, 15 s after on 2 idle cores (bench/radial_cost.py; the uncapped cost was not run);
# (2) calibration — SPLIT_MIN_BIC_GAIN and min_fraction were measured on clusters of 50–400 members, and for a given departure from a Gaussian (a pure class's orientations
# under the missing wedge) the BIC gain grows in proportion to the members, so on tens of thousands the
# threshold would stop meaning what was measured (argued, not measured). Every run measured so far had
# clusters and merge pairs below this cap (the K check: 800 subtomograms), so their results do not
# depend on it.
SPLIT_MAX_MEMBERS = 2000


def _test_cluster(x: np.ndarray, sample_seed: int, dims: int, seed: int, reg_covar: float, min_fraction: float,
                  min_stability: float, covariance_type: str, min_bic_gain: float, max_parts: int,
                  max_members: int | None) -> dict | None:
    """The split test of one cluster (``x``: its members' features, in store order); see
    :func:`split_clusters`. None when it has too few members to test; else its record (without
    ``cluster``) and ``_part``, each member's part 0..P-1."""
    need = 2 * max(dims + 1, 2)
    if len(x) < need:
        return None
    fitted = None
    if max_members is not None and len(x) > max_members:
        fitted = np.sort(np.random.default_rng(sample_seed).choice(len(x), max_members, replace=False))
    xf = x if fitted is None else x[fitted]
    d = int(min(dims, len(xf) - 1, x.shape[1]))
    pca = PCA(n_components=d, svd_solver="full", random_state=seed)
    # fit_transform, as before the cap: its projections differ from transform's in the last bits
    zl = pca.fit_transform(xf.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = GaussianMixture(1, covariance_type="full", reg_covar=reg_covar, random_state=seed).fit(zl)
        fits = [GaussianMixture(k, covariance_type=covariance_type, reg_covar=reg_covar, random_state=seed,
                                n_init=SPLIT_N_INIT).fit(zl) for k in range(2, max(2, max_parts) + 1)]
        best = min(fits, key=lambda g: g.bic(zl))
        again = GaussianMixture(best.n_components, covariance_type=covariance_type, reg_covar=reg_covar,
                                random_state=seed + 7919, n_init=SPLIT_N_INIT).fit(zl)
    gain = float(one.bic(zl) - best.bic(zl))
    za = zl if fitted is None else pca.transform(x.astype(np.float64))  # every member
    part = relabel_consecutive(best.predict(za))
    sizes = np.bincount(part, minlength=best.n_components)
    stability = agreement(part, again.predict(za))
    ok = gain > min_bic_gain and sizes.min() >= max(min_fraction * len(x), d + 1) and stability >= min_stability
    return {"size": int(len(x)), "tested": int(len(xf)), "bic_gain": gain, "parts": sizes.tolist(),
            "stability": stability, "split": bool(ok), "_part": part}


def split_clusters(features: np.ndarray, labels: np.ndarray, dims: int = 8, seed: int = 0, reg_covar: float = 1e-5,
                   min_fraction: float = 0.05, min_stability: float = 0.9,
                   max_clusters: int | None = None, covariance_type: str = "full",
                   min_bic_gain: float = SPLIT_MIN_BIC_GAIN, max_parts: int = 2,
                   max_members: int | None = SPLIT_MAX_MEMBERS, n_jobs: int | None = 1) -> tuple[np.ndarray, list[dict]]:
    """Split every cluster that holds two (or up to ``max_parts``) populations (X-means-style test in
    the cluster's own PCA).

    For each cluster: PCA of its members' features (not the global PCA, which is dominated by the
    differences *between* clusters and can hide a split inside one) to ``dims`` dimensions, then one
    full-covariance Gaussian vs two with ``covariance_type`` covariances ("full", or "tied": one
    shared covariance, the same variability about two means, only ``dims`` + 1 parameters more than
    one Gaussian, so it can afford more dimensions). The cluster is split when two have the lower
    BIC by more than ``min_bic_gain``, both parts hold at least ``min_fraction`` of it (and more than ``dims`` members), and the split is stable:
    a second fit from another seed agrees on at least ``min_stability`` of the members. With
    ``max_parts`` > 2 every number of parts from 2 to ``max_parts`` is fitted and the one with the
    lowest BIC is tested the same way (every part at least ``min_fraction`` and more than ``dims``
    members). Why: a cluster of four similar populations may have no two-way split that beats one
    Gaussian (which two go together is arbitrary) while its four-way split does (SPLIT_MAX_PARTS). New clusters
    get the next numbers, up to ``max_clusters`` in all (largest BIC gains first). A cluster of more
    than ``max_members`` is tested on a seeded random sample of that many (SPLIT_MAX_MEMBERS; None: all),
    the PCA and mixtures fitted to it then labelling every member. The clusters are tested on
    ``n_jobs`` processes (:func:`parallel_map`; the result does not depend on it). Returns (labels, one
    record per tested cluster; ``tested`` is how many members the fits saw).
    """
    labels = np.asarray(labels).copy()
    nxt = int(labels.max()) + 1
    members = [np.flatnonzero(labels == c) for c in range(nxt)]
    options = (dims, seed, reg_covar, min_fraction, min_stability, covariance_type, min_bic_gain, max_parts, max_members)
    done = parallel_map(_test_cluster, [(features[members[c]], seed + c, *options) for c in range(nxt)], n_jobs)
    # a cluster too small to test (None) gets no record
    records = [{"cluster": c, **r, "_members": members[c]} for c, r in enumerate(done) if r is not None]
    room = len(records) + 10**9 if max_clusters is None else max(0, max_clusters - nxt)
    for r in sorted([r for r in records if r["split"]], key=lambda r: -r["bic_gain"]):
        new_parts = len(r["parts"]) - 1  # part 0 keeps the cluster's number
        if room < new_parts:
            r["split"] = False
            continue
        for j in range(1, new_parts + 1):
            labels[r["_members"][r["_part"] == j]] = nxt
            nxt += 1
        room -= new_parts
    for r in records:
        del r["_members"], r["_part"]
    return labels, records


def merge_clusters(features: np.ndarray, labels: np.ndarray, dims: int = 8, seed: int = 0, reg_covar: float = 1e-5,
                   covariance_type: str = "full", min_bic_gain: float = SPLIT_MIN_BIC_GAIN,
                   parents: np.ndarray | None = None, max_members: int | None = SPLIT_MAX_MEMBERS,
                   n_jobs: int | None = 1) -> tuple[np.ndarray, list[dict]]:
    """Merge clusters that the split test cannot tell apart: the converse of :func:`split_clusters`.

    For every pair of clusters, their union is given to ``split_clusters``'s test (same ``dims``,
    ``covariance_type``, ``min_bic_gain`` and ``max_members``); a pair it declines to split is one population. The
    declined pair with the lowest BIC gain is merged first, then the pairs of the merged cluster are
    tested again, until every pair is split. Meant for rotation-invariant descriptors: clusters that
    differ only in how the particles sit (orientation) are one population there. The pairs of each
    round are tested on ``n_jobs`` processes (:func:`parallel_map`; the result does not depend on it).

    ``parents``: each member's cluster before a ``split_clusters`` that made ``labels``. Clusters cut
    from one parent are never merged with each other (nor a merged cluster with a sibling of any of its
    parts): the split test judged them apart in one joint fit of several parts, which a pairwise test
    cannot overrule. Why (measured, 2026-12-02, the K check's 8 classes × 100): the radial split test cut
    a cluster of four small complexes into its four (BIC gain +293), and the pairwise merge test,
    which cannot separate two of them alone, joined three of the four again (K = 6, homogeneity 0.77).
    Returns (labels 0..K'-1, one record per merge).
    """
    labels = relabel_consecutive(np.asarray(labels))
    gains: dict[tuple[int, int], float] = {}
    # the parent clusters each cluster's members came from (sets, so that merged clusters keep all)
    origin = {c: ({int(v) for v in np.unique(np.asarray(parents)[labels == c])} if parents is not None else set())
              for c in range(int(labels.max()) + 1)}
    # split_clusters' test of the union as one cluster (number 0: sample seed = seed), default
    # min_fraction and min_stability, two parts
    options = (dims, seed, reg_covar, 0.05, 0.9, covariance_type, min_bic_gain, 2, max_members)

    def test(pairs) -> None:
        """gains[pair]: the BIC gain of a declined split of the union, or None (split, too few
        members to test, or siblings of one split: left apart)."""
        todo = [(a, b) for a, b in pairs if not origin[a] & origin[b]]
        done = parallel_map(_test_cluster, [(features[(labels == a) | (labels == b)], seed, *options) for a, b in todo], n_jobs)
        for pair in pairs:
            gains[pair] = None
        for pair, r in zip(todo, done):
            gains[pair] = None if r is None or r["split"] else r["bic_gain"]

    k = int(labels.max()) + 1
    test([(a, b) for a in range(k) for b in range(a + 1, k)])
    records = []
    while True:
        declined = {pair: g for pair, g in gains.items() if g is not None}
        if not declined:
            break
        (a, b), g = min(declined.items(), key=lambda kv: kv[1])
        records.append({"clusters": [a, b], "sizes": [int((labels == a).sum()), int((labels == b).sum())], "bic_gain": g})
        labels[labels == b] = a
        origin[a] |= origin.pop(b)
        gains = {pair: v for pair, v in gains.items() if b not in pair}
        test([(min(a, c), max(a, c)) for c in sorted({x for pair in gains for x in pair} - {a})])
    return relabel_consecutive(labels), records


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


def mixture_from_params(weights, means, covariances) -> GaussianMixture:
    """A fitted full-covariance GaussianMixture with these parameters (for predict / predict_proba)."""
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gm = GaussianMixture(n_components=len(weights), covariance_type="full")
    gm.weights_, gm.means_, gm.covariances_ = np.asarray(weights), np.asarray(means), np.asarray(covariances)
    gm.precisions_cholesky_ = _compute_precision_cholesky(gm.covariances_, "full")
    gm.precisions_ = np.array([c @ c.T for c in gm.precisions_cholesky_])
    gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, 0.0
    return gm
