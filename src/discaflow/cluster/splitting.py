"""Split and merge tests of clusters (X-means style): is a cluster one Gaussian population or
several, in its own PCA? Used by DISCA's E-step on the radial descriptors and by radial.cluster_radial."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from discaflow.cluster.mixtures import agreement, parallel_map, relabel_consecutive

SPLIT_N_INIT = 30  # restarts per fit: at 10, 5 of 40 seeds found a wrong optimum and merged two pure classes of the K check
SPLIT_MIN_BIC_GAIN = 10.0  # "very strong" evidence (Kass & Raftery 1995): pure classes of 50 gained 0.4–8, true splits 21–490
SPLIT_MAX_PARTS = 4  # four similar complexes have a 4-part split that beats one Gaussian where no 2-part split does (K check, 8 classes)
SPLIT_MAX_MEMBERS = 2000  # larger clusters are tested on a seeded sample: bounded cost at 200k (bench/radial_cost.py), BIC gains as calibrated


@dataclass(frozen=True)
class SplitTest:
    """The settings of one split test (see :func:`split_clusters`)."""

    dims: int
    seed: int
    reg_covar: float = 1e-5
    min_fraction: float = 0.05
    min_stability: float = 0.9
    covariance_type: str = "full"
    min_bic_gain: float = SPLIT_MIN_BIC_GAIN
    max_parts: int = 2
    max_members: int | None = SPLIT_MAX_MEMBERS


def one_cluster_test(x: np.ndarray, sample_seed: int, t: SplitTest) -> dict | None:
    """The split test of one cluster (``x``: its members' features, in store order). None when it has
    too few members to test; else its record (without ``cluster``) and ``_part``, each member's part."""
    need = 2 * max(t.dims + 1, 2)
    if len(x) < need:
        return None
    fitted = None
    if t.max_members is not None and len(x) > t.max_members:
        fitted = np.sort(np.random.default_rng(sample_seed).choice(len(x), t.max_members, replace=False))
    xf = x if fitted is None else x[fitted]
    d = int(min(t.dims, len(xf) - 1, x.shape[1]))
    pca = PCA(n_components=d, svd_solver="full", random_state=t.seed)
    zl = pca.fit_transform(xf.astype(np.float64))  # fit_transform: its projections differ from transform's in the last bits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = GaussianMixture(1, covariance_type="full", reg_covar=t.reg_covar, random_state=t.seed).fit(zl)
        fits = [GaussianMixture(k, covariance_type=t.covariance_type, reg_covar=t.reg_covar, random_state=t.seed,
                                n_init=SPLIT_N_INIT).fit(zl) for k in range(2, max(2, t.max_parts) + 1)]
        best = min(fits, key=lambda g: g.bic(zl))
        again = GaussianMixture(best.n_components, covariance_type=t.covariance_type, reg_covar=t.reg_covar,
                                random_state=t.seed + 7919, n_init=SPLIT_N_INIT).fit(zl)
    gain = float(one.bic(zl) - best.bic(zl))
    za = zl if fitted is None else pca.transform(x.astype(np.float64))  # every member
    part = relabel_consecutive(best.predict(za))
    sizes = np.bincount(part, minlength=best.n_components)
    stability = agreement(part, again.predict(za))
    ok = gain > t.min_bic_gain and sizes.min() >= max(t.min_fraction * len(x), d + 1) and stability >= t.min_stability
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
    ``n_jobs`` processes (mixtures.parallel_map; the result does not depend on it). Returns (labels, one
    record per tested cluster; ``tested`` is how many members the fits saw).
    """
    labels = np.asarray(labels).copy()
    nxt = int(labels.max()) + 1
    members = [np.flatnonzero(labels == c) for c in range(nxt)]
    test = SplitTest(dims, seed, reg_covar, min_fraction, min_stability, covariance_type, min_bic_gain, max_parts, max_members)
    done = parallel_map(one_cluster_test, [(features[members[c]], seed + c, test) for c in range(nxt)], n_jobs)
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
    round are tested on ``n_jobs`` processes (mixtures.parallel_map; the result does not depend on it).

    ``parents``: each member's cluster before a ``split_clusters`` that made ``labels``. Clusters cut
    from one parent are never merged with each other (nor a merged cluster with a sibling of any of its
    parts): the split test judged them apart in one joint fit of several parts, which a pairwise test
    cannot overrule (without this rule the K check's four small complexes, cut apart by one split, were
    joined again: K = 6, homogeneity 0.77; bench/results disca_radial_*_8classes*).
    Returns (labels 0..K'-1, one record per merge).
    """
    labels = relabel_consecutive(np.asarray(labels))
    gains: dict[tuple[int, int], float] = {}
    # the parent clusters each cluster's members came from (sets, so that merged clusters keep all)
    origin = {c: ({int(v) for v in np.unique(np.asarray(parents)[labels == c])} if parents is not None else set())
              for c in range(int(labels.max()) + 1)}
    # split_clusters' test of the union as one cluster (number 0: sample seed = seed), two parts
    union_test = SplitTest(dims, seed, reg_covar, covariance_type=covariance_type, min_bic_gain=min_bic_gain, max_parts=2,
                           max_members=max_members)

    def test(pairs) -> None:
        """gains[pair]: the BIC gain of a declined split of the union, or None (split, too few
        members to test, or siblings of one split: left apart)."""
        todo = [(a, b) for a, b in pairs if not origin[a] & origin[b]]
        done = parallel_map(one_cluster_test, [(features[(labels == a) | (labels == b)], seed, union_test) for a, b in todo], n_jobs)
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
