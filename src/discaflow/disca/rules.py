"""DISCA's decision rules: candidate K, the warm-up, schedules, convergence and the result iteration.
Pure functions of the config and the per-iteration records (no TensorFlow, no files)."""

from __future__ import annotations

import logging

import numpy as np

from discaflow.disca.config import DiscaConfig

log = logging.getLogger(__name__)

REFERENCE_CANDIDATES = (5, 10, 20)  # the published code's candidate K, every iteration
LABEL_SMOOTHING = 0.2  # target smoothing of the first M-step (paper)
LABEL_SMOOTHING_DECAY = 0.9  # per iteration (paper)
LEARNING_RATE_DECAY = 0.95  # per iteration (paper)


def _candidates(config: DiscaConfig) -> list[int]:
    return list(REFERENCE_CANDIDATES) if config.design == "reference" else list(config.k_candidates)


def candidates_for(config: DiscaConfig, n: int) -> list[int]:
    """Candidate numbers of clusters, clipped to what ``n`` subtomograms allow (a full-covariance
    Gaussian in ``pca_components`` dimensions needs more members than dimensions)."""
    cands = _candidates(config)
    limit = max(1, n // (config.pca_components + 1))
    clipped = [k for k in cands if k <= limit]
    if len(clipped) < len(cands):
        log.warning("candidate K clipped to %s: %d subtomograms are too few for K up to %d", clipped or [1], n, max(cands))
    return clipped or [1]


def smallest_candidate(config: DiscaConfig) -> int:
    return min(_candidates(config))


def in_warmup(config: DiscaConfig, iteration: int) -> bool:
    """Design discaflow: the first ``warmup_iterations`` train on the radial descriptors' clustering."""
    return config.design == "discaflow" and iteration < config.warmup_iterations


def learning_rate(config: DiscaConfig, iteration: int) -> float:
    return config.learning_rate * LEARNING_RATE_DECAY**iteration


def label_smoothing(iteration: int) -> float:
    return LABEL_SMOOTHING * LABEL_SMOOTHING_DECAY**iteration


def smoothed_targets(labels: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """One-hot targets smoothed towards uniform by ``alpha``."""
    onehot = np.eye(k, dtype=np.float32)[labels]
    return onehot * (1.0 - alpha) + alpha / k


def cycle_stop(config: DiscaConfig) -> bool:
    """Design discaflow also stops when the labels repeat those of two iterations before (a two-labeling
    cycle; bench/README.md, result choice); the paper only on the previous iteration's."""
    return config.design == "discaflow"


def result_converged(config: DiscaConfig) -> bool:
    """Design discaflow returns a converged run's converged iteration; the paper the lowest DDBI."""
    return config.design == "discaflow"


def radial_ddbi(config: DiscaConfig) -> bool:
    """Design discaflow measures the result's DDBI in the radial descriptors' space (its labels come
    partly from tests there); the paper in the network's (bench/README.md, result choice)."""
    return config.design == "discaflow"


def labels_converged(agree: float | None, agree_two_back: float | None, config: DiscaConfig,
                     warmup: bool) -> tuple[bool, bool]:
    """(converged, by a cycle): never in the warm-up; converged when the agreement with the previous
    labels exceeds ``agreement_stop``, or (:func:`cycle_stop`) with those of two iterations before."""
    if warmup or agree is None:
        return False, False
    if agree > config.agreement_stop:
        return True, False
    cycle = cycle_stop(config) and agree_two_back is not None and agree_two_back > config.agreement_stop
    return cycle, cycle


def result_iteration(history: list[dict]) -> tuple[dict, str]:
    """The record of the result iteration and the key of the DDBI that chose (or reports) it: the last
    iteration when it converged under ``result_converged``; else the lowest DDBI after the warm-up, in
    the radial descriptors' space when every such iteration recorded it, else in the network's."""
    eligible = [s for s in history if not s.get("in_warmup")] or history
    key = "ddbi_radial" if all(s.get("ddbi_radial") is not None for s in eligible) else "ddbi"
    last = history[-1]
    if last.get("converged") and last.get("result_converged"):
        return last, key
    return min(eligible, key=lambda s: (s[key], s["iteration"])), key
