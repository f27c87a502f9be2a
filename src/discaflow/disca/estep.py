"""DISCA's E-step: from the PCA features of one iteration to its labels, K and mixture. Pure (no
TensorFlow, no files): features, descriptors and the previous labels in; labels and records out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.mixture import GaussianMixture

from discaflow.cluster.mixtures import assign_by_gaussians, fit_mixtures, match_labels, mixture_from_labels, mixture_from_params, relabel_consecutive
from discaflow.cluster.splitting import SPLIT_MAX_PARTS, merge_clusters, split_clusters

REG_COVAR = 1e-5  # added to every covariance diagonal (scikit-learn's default, the paper's code)
RADIAL_SPLIT_DIMS = 24  # of the 27 radial descriptors of a 24³ box: the 20S pair splits at 20–24, not at 16


@dataclass
class EStep:
    """The E-step's outcome. ``labels`` 0..K-1 matched to the previous iteration's; ``mixture`` one
    component per label, in label order (it reproduces the labels); ``posterior`` of each assigned
    cluster; ``k_bic`` the K that BIC chose (None in the warm-up); ``bic`` per candidate."""

    labels: np.ndarray
    mixture: GaussianMixture
    posterior: np.ndarray
    k_bic: int | None = None
    bic: dict = field(default_factory=dict)
    warm_start_kept: bool | None = None
    splits: list = field(default_factory=list)
    merges: list = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.labels.max()) + 1


def e_step(z: np.ndarray, *, candidates, design: str, warmup: bool, previous_labels: np.ndarray | None = None,
           warmup_labels: np.ndarray | None = None, radial: np.ndarray | None = None, seed: int = 0,
           n_jobs: int = 1, fit_on: np.ndarray | None = None) -> EStep:
    """Labels of the PCA features ``z`` (N × d).

    * warm-up (design discaflow): the labels are ``warmup_labels`` (radial.cluster_radial's);
    * otherwise the mixture with the lowest BIC over ``candidates`` (the K of ``previous_labels``
      warm-started from them too); then, design discaflow, every cluster tested for 2–4 populations
      in the rotation-invariant ``radial`` descriptors (splitting.split_clusters, tied covariances) and
      pairs whose union that test declines to split merged (splitting.merge_clusters; parts of one split
      are never merged again). A split or merge is kept as the labels, and the mixture rebuilt from them.

    ``fit_on``: indices of the subtomograms that the mixtures and the split and merge tests are fitted
    to (None: all). The others get the fitted mixture's labels or, where a split or merge changed them,
    those of one Gaussian per cluster in ``z`` and ``radial`` together (mixtures.assign_by_gaussians).
    Why: BIC and the split tests find more structure in more data; fitted to all of 20,000 or 50,000
    they over-split the five classes (bench/results/radial_subsample.json, scale_run_*.json).
    """
    bic, k_bic, warm = {}, None, None
    splits, merges = [], []
    if warmup:
        raw = np.asarray(warmup_labels)
        mixture = mixture_from_labels(z, raw, REG_COVAR, seed)
    else:
        sub = slice(None) if fit_on is None else fit_on
        zs = z[sub]
        best, fits = fit_mixtures(zs, candidates, previous_labels=None if previous_labels is None else previous_labels[sub],
                                  reg_covar=REG_COVAR, seed=seed, n_jobs=n_jobs)
        mixture, k_bic, warm = best.mixture, best.k, best.warm
        bic = {str(k): f.bic for k, f in fits.items()}
        raw = mixture.predict(zs)
        changed = False
        if design == "discaflow":
            # the split test first, so that each split is kept as it is: the network's PCA space may not
            # show it yet, which is what the M-step is to teach
            rs = radial[sub]
            parents = relabel_consecutive(raw)
            split, records = split_clusters(rs, parents, dims=RADIAL_SPLIT_DIMS, seed=seed, reg_covar=REG_COVAR,
                                            max_clusters=max(candidates), covariance_type="tied",
                                            max_parts=SPLIT_MAX_PARTS, n_jobs=n_jobs)
            splits = [{**r, "features": "radial"} for r in records]
            if any(r["split"] for r in records):
                raw = split
            merged, merges = merge_clusters(rs, relabel_consecutive(raw), dims=RADIAL_SPLIT_DIMS, seed=seed,
                                            reg_covar=REG_COVAR, covariance_type="tied", parents=parents, n_jobs=n_jobs)
            if merges:
                raw = merged
            changed = any(r["split"] for r in splits) or bool(merges)
        if fit_on is not None and not changed:
            raw = mixture.predict(z)  # the fitted mixture labels all, as without a sample
        elif fit_on is not None:
            joint = np.hstack([z, radial])
            raw = relabel_consecutive(assign_by_gaussians(joint[fit_on], relabel_consecutive(raw), joint, REG_COVAR))
        if changed:
            mixture = mixture_from_labels(z, raw, REG_COVAR, seed)
    labels = relabel_consecutive(raw)
    posterior = mixture.predict_proba(z)[np.arange(len(raw)), raw]
    if previous_labels is not None:
        labels = match_labels(previous_labels, labels)
    k = int(labels.max()) + 1
    # components in label order, empty ones dropped: the saved mixture alone reproduces the labels
    order = np.array([raw[labels == j][0] for j in range(k)])
    return EStep(labels=labels, mixture=_reordered(mixture, order), posterior=posterior, k_bic=k_bic, bic=bic,
                 warm_start_kept=warm, splits=splits, merges=merges)


def _reordered(mixture: GaussianMixture, order: np.ndarray) -> GaussianMixture:
    """The fitted mixture's components ``order`` only, weights renormalised."""
    w = mixture.weights_[order]
    return mixture_from_params(w / w.sum(), mixture.means_[order], mixture.covariances_[order])
