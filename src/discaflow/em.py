"""The DISCA loop: YOPO features (E-step: PCA + Gaussian mixtures, K by BIC) alternating with
training YOPO on the smoothed cluster labels (M-step), as checkpointed, resumable iterations.

Every iteration writes ``iter_NNN/`` under the state directory atomically (a temporary directory
renamed when complete): the model after the M-step (``model.keras``), the PCA and mixture
parameters (``mixture.npz``), labels, PCA features and ``state.json`` (K, DDBI, label agreement,
BICs, learning rate, smoothing, timings). A run killed at any point resumes from the last complete
iteration and, with the same seed, reaches the same labels: every random draw of iteration i comes
from generators seeded by (seed, i), and TensorFlow runs with deterministic ops.

Iteration i: features of every subtomogram with the model trained so far (dropout off) → PCA →
mixtures for the candidate K → labels (highest posterior, empty clusters removed) matched to the
previous iteration's by the Hungarian algorithm → DDBI → stop when more than ``agreement_stop`` of
the labels agree with the previous iteration's (or, ``cycle_stop``, with those of two iterations
before) or after ``max_iterations`` → otherwise M-step: a new softmax head trained on the
frozen features when K changed, then one epoch over every subtomogram and one randomly rotated copy
of each, with label-smoothed targets, categorical hinge loss and Nadam. The result is the converged
iteration of a converged run (``result_converged``), else the iteration with the lowest DDBI (with
``k_strategy`` radial measured in the radial descriptors' space: ``result_space``); the paper keeps
the lowest DDBI in every case.

K strategies (``k_strategy``):

* ``reference`` — the published code: candidates {5, 10, 20} by BIC every iteration.
* ``bic`` — the paper's text: every K of ``k_candidates`` by BIC every iteration.
* ``overpartition`` — the first ``warmup_iterations`` train on an over-partition (the
  largest candidate the data allow), so the network learns to separate everything that differs;
  from then on K is chosen by BIC over all candidates on the sharpened features. This avoids the
  collapse measured with ``bic`` at CPU-sized N: on random-network features BIC picks K = 2 and
  self-labelling entrenches it.
* ``radial`` (default) — the first ``warmup_iterations`` train on a classical clustering of
  rotation-invariant radial descriptors (:func:`discaflow.radial.cluster_radial`: radial density
  profile and log power spectrum, PCA, K by BIC over ``k_candidates``, then clusters split recursively
  in their own descriptor space) instead of an over-partition of the random network's features; from
  then on K by BIC on the network's features as ``overpartition``, followed by the radial split and
  merge tests (``radial_split``, ``radial_merge``). A deviation from the paper (whose first labels come
  from the untrained network), for the reason measured on the benchmarks' Table 1 set: self-labelling
  refines the separations its first labels hold and never creates one they lack (20S vs capped 20S
  proteasome mixed in every run), and the random network's first labels hold less than the radial
  descriptors. The K check of the issue (the same settings on 3, 5 and 8 classes, never told K;
  bench/README.md, 2026-12-03): K = 3, 5 and 8 (homogeneity 1.000, 0.971–1.000, 1.000) on sets whose
  every pair of structures is separable given the labels (bench/separability.py); K = 6 (0.755) on an
  8-class set of four similar-mass complexes, two pairs of which are not (0.93, 0.97) — against K = 3,
  4 and 6 with homogeneity 0.98, 0.54 and 0.53 (the last on the similar-mass set) for ``overpartition``, the default until
  2026-12-02.

After the warm-up (``overpartition``, ``radial``) or from the start (``bic``), each iteration can also
run a split test on the network's features (``split_test``, :func:`discaflow.gmm.split_clusters`):
every cluster is tested for two populations in its *own* PCA (X-means style: one vs two Gaussians by
BIC, both parts ≥ 5 %, the split reproducible from another seed). Measured on the reference benchmark
with ``overpartition``: the global BIC merged 26S with 20S proteasomes and RuBisCO with p97 (K = 3,
each cluster a pure union of whole classes); inside the merged proteasome cluster the split test
separates the two (96 % pure) while it declines to split the pure ribosome cluster. Off by default
since ``radial`` became the default: there it cut the capped 20S in two by orientation (K = 6,
homogeneity 0.968), which the radial split test does not do.

The defaults deviate from the reference implementation in these (all measured, bench/README.md):
``k_strategy`` radial (reference: ``reference``), ``learning_rate`` 1e-3 (reference 1e-5; already at
1e-4 the network had not learnt the warm-up labels: its BIC chose K = 3 on a 5-class set after the
warm-up; 1e-5 was not run with the radial start), ``batchnorm_samples`` 1024 (0), ``radial_split`` and ``radial_merge`` on. ``REFERENCE_DESIGN``
holds the reference's values of these.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from discaflow.errors import InputError
from discaflow.gmm import (SPLIT_MAX_PARTS, agreement, copy_whitening, ddbi, fit_mixtures, fit_pca, fit_whitened_pca, match_labels,
                           mixture_from_labels,
                           relabel_consecutive, split_clusters, merge_clusters)
from discaflow.io.store import SubtomogramStore

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Raised when SIGTERM/SIGINT asked the run to stop; the last complete iteration is kept."""


@dataclass
class DiscaParams:
    """Parameters of a DISCA run (defaults: the reference implementation but for the K strategy and
    the settings it needs, listed in the module docstring; ``REFERENCE_DESIGN`` restores them)."""

    n_blocks: int = 10
    first_filters: int = 64
    filter_step: int = 16
    feature_dim: int = 1024
    dropout_rate: float = 0.5
    precision: str = "auto"  # auto: mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 instructions, else float32
    pca_components: int = 16
    k_strategy: str = "radial"  # radial | overpartition | bic | reference
    k_candidates: list = field(default_factory=lambda: list(range(2, 21)))
    warmup_iterations: int = 3
    max_iterations: int = 20
    agreement_stop: float = 0.999
    # Also converged when the labels agree (above agreement_stop) with those of two iterations before:
    # the loop alternates between two labelings that differ in a few subtomograms (boundary cases
    # assigned one way, then the other), and every further iteration repeats the pair. The paper
    # stops only on the previous iteration's labels (REFERENCE_DESIGN: False). Measured offline on
    # the saved iterations of 10 runs (bench/result_choice.py, bench/README.md, 2026-12-03): three of
    # them alternated. The Table 1 speed cell (narrow network, 500 subtomograms, 7974a35) would have
    # stopped at iteration 7 instead of 10 with the same labels (homogeneity 0.961). The same cell at
    # a801d0d would have stopped at iteration 5 instead of 6 (0.993, the same). The published-network
    # speed cell (250 subtomograms) would have converged at its last iteration, 11, with homogeneity
    # 1.000, instead of ending unconverged with the lowest-DDBI iteration's 0.786. The other seven
    # runs were unchanged: three demos, three runs of the narrow speed cell, and the published-network
    # cell with 8 PCA dimensions. Both speed cells rerun with the rule (2026-12-03) followed the same
    # trajectories and ended as replayed: 8 iterations and 0.961; converged at 11 with 1.000.
    cycle_stop: bool = True
    label_smoothing: float = 0.2
    label_smoothing_decay: float = 0.9
    learning_rate: float = 1e-3  # reference 1e-5 (module docstring)
    learning_rate_decay: float = 0.95
    batch_size: int = 64
    head_learning_rate: float = 1e-4
    head_epochs: int = 10
    reg_covar: float = 1e-5
    rotation_copies: int = 1
    epochs_per_iteration: int = 1
    seed: int = 0
    min_cluster_size: int = 0  # for over-partitioning: at least this many subtomograms per cluster
    split_test: bool = False  # after the warm-up: split clusters that hold two populations in the network's features (gmm.split_clusters)
    # After the warm-up, a second split test on rotation-invariant radial features of the subtomograms
    # (radial.radial_features: radial density profile, log power spectrum and principal moments, standardised) in each
    # cluster's own PCA to radial_split_dims dimensions, one full vs 2–4 tied Gaussians (gmm.SPLIT_MAX_PARTS). A split it
    # makes becomes the iteration's labels, so the M-step trains the network on it. Why: particles that
    # differ mainly in size (the 20S proteasome and the capped 20S, 6utj) share clusters in every
    # network run (bench/README.md) although those two descriptors separate them when given the pair.
    # Alone (k_strategy overpartition) it did not separate them: quick preset on the Table 1 set
    # (float32, 2026-12-02, 5 iterations) K = 4, homogeneity 0.511, pair homogeneity 0.000 (README).
    # With k_strategy "radial" (the pair already apart in the warm-up labels) it is what splits the
    # pair again after the network's BIC merges it (bench/disca.py --preset radial; README). On by
    # default with k_strategy "radial".
    radial_split: bool = True
    radial_split_dims: int = 24  # of the 27 descriptors of a 24³ box (20S pair homogeneity 1.000 at 20–24, 0.919 at 16, measured before the 3 moments were added)
    # After the radial split test: merge clusters whose union the same test declines to split
    # (gmm.merge_clusters on the radial descriptors). Those descriptors are rotation-invariant, so clusters
    # that differ only in how the particles sit are one population there: this undoes the orientation
    # splits the network's features make. Measured offline on the saved labels of a reference-network
    # run (5 × 200, Table 1 set, k_strategy radial, 2026-12-02): K = 7 → 5, homogeneity 0.993 → 0.992,
    # completeness 0.848 → 0.992; no merge on four iterations of two other runs whose clusters were
    # distinct classes. In the loop (the same run's E-step with it, bench/disca.py --preset
    # radial-reference): K = 5, homogeneity 0.992, accuracy 0.998. On by default with k_strategy
    # "radial" (the 3-, 5- and 8-class K check was run with both tests on; module docstring).
    radial_merge: bool = True
    # BatchNorm moving statistics recomputed from this many subtomograms after every M-step and for the
    # initial network, so that the E-step's features (inference mode) are those of the current weights
    # (model.recalibrate_batchnorm). 0: off, as the reference, whose moving averages lag the weights.
    # With k_strategy overpartition it was measured to hurt: bench/disca.py --preset quick, same
    # seed, 12 iterations: off K = 5, homogeneity 0.734; 1024: K = 3, homogeneity 0.522 (K = 2 for six
    # iterations after the warm-up instead of three: exact features make self-labelling more
    # self-confirming). With k_strategy radial (default) the warm-up labels are not the network's own,
    # and the first E-step must see what the network learnt of them: 1024 in every radial run
    # measured. It matters for a network trained with true labels too (bench/ceiling.py).
    batchnorm_samples: int = 1024
    # ± tilt range (degrees) of a missing wedge imposed again on every rotated copy (augment.
    # random_rotation_batch); 0: off, as the reference. Off by default because it measured no gain:
    # bench/disca.py --preset reference on the Table 1 set, 12 iterations: 60 gave K = 5, homogeneity
    # 0.786 against K = 5, 0.792 without (bench/README.md).
    augment_wedge_deg: float = 0.0
    # E-step in features whitened by the scatter among rotated copies (gmm.copy_whitening): the
    # features of whitening_copies (4) rotated copies of this many random subtomograms, with the
    # missing wedge re-imposed when augment_wedge_deg > 0, are computed after each M-step. Directions
    # that follow a particle's orientation are scaled down before the PCA. 0: off, as the reference.
    # Off by default: on the Table 1 set (bench/disca.py --preset reference, 12 iterations, with
    # augment_wedge_deg=60) 300 gave K = 4, homogeneity 0.804, completeness 0.966 against K = 5,
    # 0.792, 0.819 without: cleaner clusters, but 20S and capped 20S stay merged (bench/README.md).
    whitening_subtomograms: int = 0
    whitening_copies: int = 4
    deterministic: bool = False  # bit-identical reruns on a CPU: float32 with oneDNN off (slower)
    # The reference design's data flow, kept only as a benchmark comparator (bench/table1.py): every
    # rotated copy is computed up front, in one thread, and the epoch's data held in memory (the store
    # then sits in memory 1 + rotation_copies times). Off: batches are read and rotated on the fly by
    # worker threads while the network trains.
    materialise_augmentation: bool = False
    # Where the DDBI that picks the result is measured: "network" (the paper: the E-step's PCA of the
    # network's features), "radial" (the standardised radial descriptors in a PCA to pca_components
    # dimensions, fitted once per run), or "auto": radial with k_strategy radial, else network. The DDBI
    # of both spaces is recorded every iteration (state.json: ddbi, ddbi_radial). Why radial there:
    # its labels come partly from the radial split and merge tests, so clusters the network has not
    # learnt to separate yet look poorly separated in the network's space although they are distinct
    # structures. Measured on the saved iterations of the K check (2026-12-03, bench/README.md): 5 classes,
    # network DDBI picked iteration 4 (homogeneity 0.835), radial DDBI the converged 1.000 iteration.
    result_space: str = "auto"
    # A run that converged (label agreement above agreement_stop after the warm-up) returns its last,
    # converged iteration; the lowest DDBI picks the result only for a run that stopped at
    # max_iterations (as the paper, which keeps the lowest-DDBI iteration: result_converged False in
    # REFERENCE_DESIGN). Why: a converged iteration is a fixed point of the loop (the E-step gives back
    # the labels the network was trained on), while DDBI in either space favours iterations that
    # merged two similar classes. Measured on the K check (2026-12-03, bench/README.md): 8 distinct
    # classes, converged at iteration 6 with homogeneity 1.000, the lowest radial DDBI picked a K = 7
    # iteration (0.879), the lowest network DDBI the converged one; 5 classes (e774c4e), converged
    # with 1.000, the lowest network DDBI picked 0.835, the radial one 1.000.
    result_converged: bool = True
    # Processes for the E-step's mixture fits and split and merge tests (gmm.parallel_map): -1 every CPU
    # this job may use (a SLURM job's cpus-per-task), 1 none. The result does not depend on it: every
    # fit is seeded and single-threaded either way.
    n_jobs: int = -1

    def __post_init__(self):
        if self.k_strategy not in K_STRATEGIES:
            raise InputError(f"disca.k_strategy: must be one of {', '.join(K_STRATEGIES)}, got {self.k_strategy!r}")
        if self.result_space not in RESULT_SPACES:
            raise InputError(f"disca.result_space: must be one of {', '.join(RESULT_SPACES)}, got {self.result_space!r}")
        if not (self.n_jobs == -1 or self.n_jobs >= 1):
            raise InputError(f"disca.n_jobs: must be -1 (every CPU) or a positive number of processes, got {self.n_jobs!r}")

    @property
    def result_ddbi_key(self) -> str:
        """The state.json key of the DDBI that picks the result (``result_space``)."""
        radial = self.result_space == "radial" or (self.result_space == "auto" and self.k_strategy == "radial")
        return "ddbi_radial" if radial else "ddbi"


REFERENCE_CANDIDATES = [5, 10, 20]
# The reference implementation's values of the parameters whose defaults deviate from it (module
# docstring): DiscaParams(**{**params, **REFERENCE_DESIGN}) runs the published design.
REFERENCE_DESIGN = {"k_strategy": "reference", "learning_rate": 1e-5, "batchnorm_samples": 0,
                    "radial_split": False, "radial_merge": False, "result_space": "network",
                    "result_converged": False, "cycle_stop": False}


# Parameters that do not change the result: left out of a state directory's identity (params.json),
# so that a run resumes under another value (a SLURM job with more CPUs).
RESULT_NEUTRAL = ("n_jobs",)
K_STRATEGIES = ("overpartition", "radial", "bic", "reference")
RESULT_SPACES = ("auto", "network", "radial")
WARMUP_STRATEGIES = ("overpartition", "radial")  # the first warmup_iterations train on labels not chosen by BIC


def candidates_for(params: DiscaParams, iteration: int, n: int) -> list[int]:
    """Candidate numbers of clusters for an iteration, clipped to what ``n`` subtomograms allow."""
    cands = REFERENCE_CANDIDATES if params.k_strategy == "reference" else sorted(set(int(k) for k in params.k_candidates))
    # a full-covariance Gaussian in d dimensions needs more than d points
    limit = max(1, n // max(params.min_cluster_size, params.pca_components + 1))
    clipped = [k for k in cands if k <= limit]
    if len(clipped) < len(cands):
        log.warning("candidate K clipped to %s: %d subtomograms are too few for K up to %d", clipped or [1], n, max(cands))
    clipped = clipped or [1]
    if params.k_strategy == "overpartition" and iteration < params.warmup_iterations:
        return [max(clipped)]
    return clipped


# ---------------------------------------------------------------- signals and state files

class _StopFlag:
    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        def handler(signum, frame):
            log.warning("signal %d received: stopping after the current batch, keeping the last complete iteration", signum)
            self.set = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, handler)
            except ValueError:  # not in the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def check(self):
        if self.set:
            raise Interrupted("stopped by signal")


def result_iteration(history: list[dict]) -> tuple[dict, str]:
    """The state of the result iteration and the key of the DDBI that chose it (for a converged
    result, the DDBI reported). The last iteration when it converged and the run was recorded with
    ``result_converged``; otherwise the lowest DDBI among the iterations after the warm-up (warm-up
    labels are not estimates of K), measured in the radial descriptors' space when every such iteration
    recorded it (``result_space``), else in the network's."""
    eligible = [s for s in history if not s.get("in_warmup")] or history
    key = "ddbi_radial" if all(s.get("ddbi_radial") is not None for s in eligible) else "ddbi"
    last = history[-1]
    if last.get("converged") and last.get("result_converged"):
        return last, key
    return min(eligible, key=lambda s: (s[key], s["iteration"])), key


def labels_converged(agree: float | None, agree_two_back: float | None, params: DiscaParams,
                     in_warmup: bool) -> tuple[bool, bool]:
    """(converged, by a cycle): whether an iteration's labels end the run. Never in the warm-up.
    Converged when their agreement with the previous iteration's labels exceeds ``agreement_stop``.
    With ``cycle_stop``, also when the agreement with the labels of two iterations before exceeds
    it. Then the loop alternates between two labelings, and "by a cycle" is True."""
    if in_warmup or agree is None:
        return False, False
    if agree > params.agreement_stop:
        return True, False
    cycle = params.cycle_stop and agree_two_back is not None and agree_two_back > params.agreement_stop
    return cycle, cycle


def radial_ddbi_space(radial: np.ndarray, pca_components: int, seed: int) -> np.ndarray:
    """The standardised radial descriptors in a PCA to ``pca_components`` dimensions (at most their
    number): the space of the result's DDBI with ``result_space`` radial."""
    f = np.asarray(radial, np.float64)
    return fit_pca(f, min(pca_components, f.shape[1]), seed).transform(f)


def iteration_dir(state_dir: Path, i: int) -> Path:
    return Path(state_dir) / f"iter_{i:03d}"


def completed_iterations(state_dir: Path) -> list[int]:
    """Iterations whose directory is complete (has state.json)."""
    out = []
    for p in sorted(Path(state_dir).glob("iter_[0-9][0-9][0-9]")):
        if (p / "state.json").exists():
            out.append(int(p.name[5:]))
    return out


def read_state(state_dir: Path, i: int) -> dict:
    return json.loads((iteration_dir(state_dir, i) / "state.json").read_text())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


# ---------------------------------------------------------------- data flow

def augmentation_workers() -> int:
    """Threads that read and rotate batches ahead of the network: the CPUs this process may use
    (SLURM's cpus-per-task), at least 2 and at most 8. On a GPU node reading, decompressing and
    rotating must keep pace with the GPU: one thread rotates ~2,000 24³ boxes per second (bench/speed.py),
    and the arithmetic there puts one modern GPU at several thousand training samples per second
    (scipy.ndimage releases the GIL while interpolating, so rotations run in parallel; h5py serialises reads)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 2
    return max(2, min(8, n))


def _prefetch(fn, items, workers: int = 2, depth: int = 4):
    """Yield fn(item) in order, computing up to ``depth`` ahead on ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


class Trainer:
    """Holds the Keras objects of a run and streams the store through them."""

    def __init__(self, store: SubtomogramStore, params: DiscaParams, stop: _StopFlag):
        import tensorflow as tf

        from discaflow import model as M

        self.tf, self.M = tf, M
        self.store, self.params, self.stop = store, params, stop
        self.box = store.box_vox
        self.n = len(store)
        self._radial = None  # radial_features, computed on first use
        self._radial_labels = None  # radial_labels, computed on first use
        self._radial_pca = None  # radial_pca, computed on first use

    def radial_labels(self, candidates) -> np.ndarray:
        """radial.cluster_radial labels of the whole store (computed once per run)."""
        if self._radial_labels is None:
            from discaflow.radial import cluster_radial

            p = self.params
            self._radial_labels = cluster_radial(self.radial_features(), candidates, split_dims=p.radial_split_dims,
                                                 seed=p.seed, reg_covar=p.reg_covar, n_jobs=p.n_jobs)
            log.info("radial warm-up labels: K=%d, sizes %s", self._radial_labels.max() + 1,
                     np.bincount(self._radial_labels).tolist())
        return self._radial_labels

    def radial_features(self) -> np.ndarray:
        """Standardised radial.radial_features of the whole store (computed once per run)."""
        if self._radial is None:
            from discaflow.radial import store_radial_features

            self._radial = store_radial_features(self.store)
        return self._radial

    def radial_pca(self) -> np.ndarray:
        """:func:`radial_ddbi_space` of the store's radial descriptors (computed once per run)."""
        if self._radial_pca is None:
            self._radial_pca = radial_ddbi_space(self.radial_features(), self.params.pca_components, self.params.seed)
        return self._radial_pca

    def predict_features(self, feature_model, batch_size: int = 128) -> np.ndarray:
        out = np.empty((self.n, feature_model.output_shape[-1]), np.float32)
        for start, x in zip(range(0, self.n, batch_size),
                            _prefetch(lambda s: self.store.read(s, s + batch_size), range(0, self.n, batch_size))):
            self.stop.check()
            out[start: start + len(x)] = self.M.predict_batch(feature_model, x, pad_to=batch_size)
        return out

    def train_epoch(self, classifier, targets: np.ndarray, learning_rate: float, iteration: int) -> float:
        """One epoch over every subtomogram and ``rotation_copies`` rotated copies of each."""
        from discaflow.augment import random_rotation_batch

        p = self.params
        rng = np.random.default_rng([p.seed, iteration, 17])
        # (index, copy) pairs in a random order; copy 0 is the original
        pairs = np.stack(np.meshgrid(np.arange(self.n), np.arange(p.rotation_copies + 1), indexing="ij"), -1).reshape(-1, 2)
        pairs = pairs[rng.permutation(len(pairs))]
        batches = [pairs[i: i + p.batch_size] for i in range(0, len(pairs), p.batch_size)]
        seeds = rng.integers(0, 2**63 - 1, len(batches))
        wedge = self.augmentation_wedge()

        def streamed(j):  # read and rotate one batch (on a worker thread)
            b = batches[j]
            x = self.store.take(b[:, 0])
            rot = b[:, 1] > 0
            if rot.any():
                x[rot] = random_rotation_batch(x[rot], np.random.default_rng(seeds[j]), wedge)
            return x[..., None], targets[b[:, 0]]

        if p.materialise_augmentation:
            # the reference design: originals and all rotated copies in memory before the first batch
            original = self.store.read(0, self.n).astype(np.float32)
            data = np.concatenate([original] + [random_rotation_batch(original, np.random.default_rng([p.seed, iteration, 19, c]), wedge)
                                                for c in range(p.rotation_copies)])
            stream = ((data[b[:, 1] * self.n + b[:, 0]][..., None], targets[b[:, 0]]) for b in batches)
        else:
            workers = augmentation_workers()
            stream = _prefetch(streamed, range(len(batches)), workers=workers, depth=2 * workers)
        classifier.optimizer.learning_rate.assign(learning_rate)
        losses = []
        for x, y in stream:
            self.stop.check()
            out = classifier.train_on_batch(x, y, return_dict=True)
            losses.append(float(out["loss"]))
        return float(np.mean(losses)) if losses else float("nan")

    def recalibrate_batchnorm(self, feature_model, iteration: int) -> None:
        """BatchNorm statistics of ``feature_model`` from ``batchnorm_samples`` random subtomograms."""
        p = self.params
        m = min(p.batchnorm_samples, self.n)
        if m <= 0:
            return
        rng = np.random.default_rng([p.seed, iteration, 29])
        idx = np.sort(rng.choice(self.n, m, replace=False))
        chunks = [idx[s: s + p.batch_size] for s in range(0, m, p.batch_size)]

        def batches():
            for x in _prefetch(self.store.take, chunks):
                self.stop.check()
                yield x

        self.M.recalibrate_batchnorm(feature_model, batches())

    def augmentation_wedge(self):
        """The rfftn-layout missing-wedge mask re-imposed on rotated copies, or None (augment_wedge_deg 0)."""
        if self.params.augment_wedge_deg <= 0:
            return None
        from discaflow.fourier import wedge_mask

        return wedge_mask(self.box, -self.params.augment_wedge_deg, self.params.augment_wedge_deg)

    def copy_whitening(self, feature_model, iteration: int) -> np.ndarray | None:
        """gmm.copy_whitening from ``whitening_copies`` rotated copies of ``whitening_subtomograms``
        random subtomograms (the same subset and rotations for a given seed and iteration), or None."""
        from discaflow.augment import random_rotation_batch

        p = self.params
        m = min(p.whitening_subtomograms, self.n)
        if m <= 0:
            return None
        rng = np.random.default_rng([p.seed, iteration, 31])
        idx = np.sort(rng.choice(self.n, m, replace=False))
        wedge = self.augmentation_wedge()
        out = np.empty((m, p.whitening_copies, feature_model.output_shape[-1]), np.float32)
        for s in range(0, m, p.batch_size):
            x = self.store.take(idx[s: s + p.batch_size])
            for c in range(p.whitening_copies):
                self.stop.check()
                copies = random_rotation_batch(x, rng, wedge=wedge)
                out[s: s + len(x), c] = self.M.predict_batch(feature_model, copies, pad_to=p.batch_size)
        return copy_whitening(out)

    def train_head(self, head, features: np.ndarray, targets: np.ndarray, iteration: int) -> None:
        keras = self.M.keras
        p = self.params
        head.compile(optimizer=keras.optimizers.Nadam(p.head_learning_rate), loss=keras.losses.CategoricalHinge())
        rng = np.random.default_rng([p.seed, iteration, 23])
        for _ in range(p.head_epochs):
            order = rng.permutation(self.n)
            for s in range(0, self.n, p.batch_size):
                self.stop.check()
                idx = order[s: s + p.batch_size]
                head.train_on_batch(features[idx], targets[idx])


def smoothed_targets(labels: np.ndarray, k: int, alpha: float) -> np.ndarray:
    onehot = np.eye(k, dtype=np.float32)[labels]
    return onehot * (1.0 - alpha) + alpha / k


def resolve_precision(precision: str, deterministic: bool = False) -> str:
    """``auto``: mixed_float16 on a GPU; on a CPU mixed_bfloat16 where it has bfloat16 instructions,
    float32 where it has not (emulated bfloat16 is many times slower, see cpu.cpu_has_native_bfloat16);
    float32 for deterministic runs."""
    if precision != "auto":
        return precision
    if deterministic:
        return "float32"  # bfloat16 needs oneDNN, which reorders floating-point sums
    import tensorflow as tf

    from discaflow.cpu import cpu_has_native_bfloat16

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"


def configure_tensorflow(seed: int, deterministic: bool = True) -> None:
    """Memory growth on GPUs; op determinism; oneDNN's CPU kernels on (cpu.prefer_onednn: several times
    faster Conv3D gradients on CPUs where TensorFlow leaves them off), or with ``deterministic`` off
    (CPU sums in a fixed order) — either must happen before TensorFlow is imported."""
    import sys

    if deterministic:
        if "tensorflow" not in sys.modules:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        elif os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            log.warning("deterministic run requested after TensorFlow was imported with oneDNN on: "
                        "results may differ in the last bits between runs")
    else:
        from discaflow.cpu import prefer_onednn

        prefer_onednn()
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    tf.config.experimental.enable_op_determinism()
    if deterministic:
        try:  # reductions split across threads are summed in varying order
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            log.warning("TensorFlow threads already configured: deterministic mode may differ in the last bits")


# ---------------------------------------------------------------- the estimator

class DiscaEM:
    """DISCA as a scikit-learn-style estimator over a subtomogram store.

    ``fit(store, state_dir)`` runs (or resumes) the iterations; fitted attributes: ``labels_``,
    ``n_clusters_``, ``best_iteration_``, ``ddbi_``, ``history_`` (one dict per iteration),
    ``converged_``.
    """

    def __init__(self, **params):
        self.params = DiscaParams(**params)

    # -- fitting
    def fit(self, store_path, state_dir, max_new_iterations: int | None = None, init_from=None,
            restart_on_change: bool = False) -> "DiscaEM":
        """Run or resume the iterations.

        The state directory remembers the parameters, the store (size and modification time) and the
        initial model; a mismatch is an error, or with ``restart_on_change`` the old iterations are
        deleted and the run starts over (what the workflow's first round does after a config edit).
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        self._clean_partial(state_dir)
        p = self.params
        st = Path(store_path).stat() if Path(store_path).exists() else None
        kept = {k: v for k, v in asdict(p).items() if k not in RESULT_NEUTRAL}
        identity = {"params": json.loads(json.dumps(kept, default=_json_default)),
                    "store": {"name": Path(store_path).name, "size_bytes": st.st_size if st else None,
                              "mtime_ns": st.st_mtime_ns if st else None},
                    "init_from": str(init_from) if init_from else None}
        params_file = state_dir / "params.json"
        if params_file.exists() and json.loads(params_file.read_text()) != identity:
            if not restart_on_change:
                raise InputError(f"{state_dir}: holds a run with other DISCA parameters or another store; "
                                 "delete the directory to start over")
            log.info("%s: parameters or store changed: starting over", state_dir)
            for child in state_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if not params_file.exists():
            params_file.write_text(json.dumps(identity, indent=2, default=_json_default))
        done = completed_iterations(state_dir)
        if done and read_state(state_dir, done[-1]).get("finished"):
            return self._load_result(state_dir)
        with SubtomogramStore(store_path) as store, _StopFlag() as stop:
            n = len(store)
            if n == 0:
                raise InputError(f"{store.path}: the store holds no subtomograms; check picking")
            smallest = min(REFERENCE_CANDIDATES if p.k_strategy == "reference" else p.k_candidates)
            if n < max(2, smallest):
                raise InputError(f"{store.path}: {n} subtomogram(s), fewer than the smallest candidate K ({smallest}); "
                                 "pick more particles or lower disca.k_candidates")
            self._check_store(store)
            configure_tensorflow(p.seed, p.deterministic)
            import keras

            from discaflow import model as M

            M.set_precision(resolve_precision(p.precision, p.deterministic))
            trainer = Trainer(store, p, stop)
            start = done[-1] + 1 if done else 0
            classifier = None
            if start == 0:
                keras.utils.set_random_seed(p.seed)
                classifier = self._initial_model(store.box_vox, init_from)
                trainer.recalibrate_batchnorm(classifier.get_layer("yopo_features"), 0)
                (state_dir / "init").mkdir(exist_ok=True)
                classifier.save(state_dir / "init" / "model.keras")
            prev_labels = np.load(iteration_dir(state_dir, start - 1) / "labels.npy") if start else None
            ran = 0
            for i in range(start, p.max_iterations):
                if max_new_iterations is not None and ran >= max_new_iterations:
                    break
                if classifier is None:  # a resumed run: the network the last complete iteration saved
                    model_dir = iteration_dir(state_dir, i - 1) if i else state_dir / "init"
                    classifier = M.load_model(model_dir / "model.keras")
                # The network stays in memory from one iteration to the next (its compiled training
                # step is reused: reloading it cost ~3 s of tracing per iteration). What a reload would
                # reset is reset here, so that a resumed run stays bit-identical to one that never
                # stopped (tests/test_disca.py): the input dropout's random stream (not saved by
                # Keras) and the global seeds.
                M.reset_random_state(classifier)
                keras.utils.set_random_seed(p.seed * 1000 + i)
                finished, classifier, prev_labels = self._iteration(i, classifier, prev_labels, trainer, state_dir)
                ran += 1
                if finished:
                    break
        done = completed_iterations(state_dir)
        if done and (read_state(state_dir, done[-1]).get("finished") or done[-1] + 1 >= p.max_iterations):
            return self._load_result(state_dir)
        self.converged_ = False
        return self

    def _check_store(self, store: SubtomogramStore) -> None:
        probe = store.read(0, min(len(store), 256))
        if not np.isfinite(probe).all():
            raise InputError(f"{store.path}: the store holds NaN or Inf values; re-extract the dataset")

    def _initial_model(self, box_vox: int, init_from):
        from discaflow import model as M

        p = self.params
        if init_from is not None:
            from discaflow.bundle import load_bundle

            bundle = load_bundle(init_from)
            if bundle.box_vox != box_vox:
                raise InputError(f"{init_from}: model for {bundle.box_vox}³ subtomograms, the store holds {box_vox}³; "
                                 "extract with the model's box size")
            feature_model = bundle.feature_model
        else:
            feature_model = M.build_feature_model(box_vox, p.n_blocks, p.first_filters, p.filter_step, p.feature_dim,
                                                  p.dropout_rate, seed=p.seed)
        head = M.build_head(p.feature_dim, 1, seed=p.seed)
        return self._compile(M.build_classifier(feature_model, head))

    def _compile(self, classifier):
        import keras

        classifier.compile(optimizer=keras.optimizers.Nadam(self.params.learning_rate), loss=keras.losses.CategoricalHinge())
        classifier.optimizer.build(classifier.trainable_variables)  # saved and loaded with all its variables
        return classifier

    def _iteration(self, i, classifier, prev_labels, trainer: Trainer, state_dir: Path):

        from discaflow import model as M

        p = self.params
        t0 = time.perf_counter()
        feature_model = classifier.get_layer("yopo_features")
        features = trainer.predict_features(feature_model)
        t_features = time.perf_counter() - t0
        whitening = trainer.copy_whitening(feature_model, i)
        t_whitening = time.perf_counter() - t0 - t_features
        if whitening is None:
            pca = fit_pca(features, p.pca_components, p.seed)
            split_features = features
        else:
            pca = fit_whitened_pca(features, whitening, p.pca_components, p.seed)
            split_features = (features.astype(np.float64) - pca.mean_) @ whitening
        z = pca.transform(features.astype(np.float64))
        cands = candidates_for(p, i, len(z))
        in_warmup = p.k_strategy in WARMUP_STRATEGIES and i < p.warmup_iterations
        if p.k_strategy == "radial" and in_warmup:
            raw = trainer.radial_labels(cands)
            mixture = mixture_from_labels(z, raw, p.reg_covar, p.seed + i)
            fits, k_bic, warm = {}, None, None
        else:
            best, fits = fit_mixtures(z, cands, previous_labels=prev_labels if prev_labels is not None else None,
                                      reg_covar=p.reg_covar, seed=p.seed + i, n_jobs=p.n_jobs)
            mixture, k_bic, warm = best.mixture, best.k, best.warm
            raw = mixture.predict(z)
        splits, merges = [], []
        testing = p.k_strategy != "reference" and not in_warmup
        parents = relabel_consecutive(raw)  # the clusters before the radial split (its parts are not merged again)
        if p.radial_split and testing:
            # first, so that the network's split test below cannot cut a cluster the radial descriptors
            # would split cleanly (measured: split test first, the 20S pair cut 78 + 22 / 95 + 5 and
            # never repaired; see bench/README.md). Each split is kept as it is (the network's PCA
            # space may not show it yet: that is what the M-step is to teach); the mixture of the
            # clusters gives the posteriors and the bundle.
            split, radial_splits = split_clusters(trainer.radial_features(), parents,
                                                  dims=p.radial_split_dims, seed=p.seed + i, reg_covar=p.reg_covar,
                                                  max_clusters=max(cands), covariance_type="tied", max_parts=SPLIT_MAX_PARTS,
                                                  n_jobs=p.n_jobs)
            splits += [{**r, "features": "radial"} for r in radial_splits]
            if any(r["split"] for r in radial_splits):
                raw = split
        if p.radial_merge and testing:
            merged, merges = merge_clusters(trainer.radial_features(), relabel_consecutive(raw), dims=p.radial_split_dims,
                                            seed=p.seed + i, reg_covar=p.reg_covar, covariance_type="tied", parents=parents,
                                            n_jobs=p.n_jobs)
            if merges:
                raw = merged
        if any(r["split"] for r in splits) or merges:  # the radial tests changed the labels
            mixture = mixture_from_labels(z, raw, p.reg_covar, p.seed + i)
        if p.split_test and testing:
            split, network_splits = split_clusters(split_features, relabel_consecutive(raw), dims=max(2, p.pca_components // 2),
                                                   seed=p.seed + i, reg_covar=p.reg_covar, max_clusters=max(cands),
                                                   n_jobs=p.n_jobs)
            splits += network_splits
            if any(r["split"] for r in network_splits):
                mixture = mixture_from_labels(z, split, p.reg_covar, p.seed + i)
                # without the radial test: labels from the mixture of the split clusters (the
                # reference-like E-step: every label a highest posterior); with it the split is kept,
                # as the radial one is (a posterior re-assignment would undo what the radial split did)
                raw = split if p.radial_split else mixture.predict(z)
        labels = relabel_consecutive(raw)
        posterior = mixture.predict_proba(z)[np.arange(len(raw)), raw]  # of the assigned cluster
        agree = agree_two_back = None
        if prev_labels is not None:
            labels = match_labels(prev_labels, labels)
            agree = agreement(prev_labels, labels)
            if i >= 2:  # on disk, so that a resumed run decides as one that never stopped
                agree_two_back = agreement(np.load(iteration_dir(state_dir, i - 2) / "labels.npy"), labels)
        k = int(labels.max()) + 1
        score = ddbi(z, labels, p.reg_covar)
        score_radial = ddbi(trainer.radial_pca(), labels, p.reg_covar) if p.result_ddbi_key == "ddbi_radial" else None
        t_gmm = time.perf_counter() - t0 - t_features - t_whitening
        converged, cycle = labels_converged(agree, agree_two_back, p, in_warmup)
        finished = converged or i + 1 >= p.max_iterations
        lr = p.learning_rate * p.learning_rate_decay**i
        alpha = p.label_smoothing * p.label_smoothing_decay**i
        loss = None
        if not finished:
            targets = smoothed_targets(labels, k, alpha)
            k_old = classifier.output_shape[-1]
            if k != k_old or prev_labels is None:
                head = M.build_head(p.feature_dim, k, seed=p.seed + i)
                trainer.train_head(head, features, targets, i)
                classifier = self._compile(M.build_classifier(feature_model, head))
            for epoch in range(p.epochs_per_iteration):
                loss = trainer.train_epoch(classifier, targets, lr, i * 1000 + epoch)
            trainer.recalibrate_batchnorm(classifier.get_layer("yopo_features"), i + 1)
        t_total = time.perf_counter() - t0
        state = {
            "iteration": i, "k": k, "ddbi": score, "ddbi_radial": score_radial, "agreement": agree, "agreement_two_back": agree_two_back, "converged": converged,
            "cycle": cycle, "finished": finished,
            "candidates": cands, "bic": {str(kk): f.bic for kk, f in fits.items()}, "warm_start_kept": warm,
            "k_bic": k_bic, "splits": splits, "merges": merges, "in_warmup": in_warmup, "result_converged": p.result_converged,
            "learning_rate": lr, "label_smoothing": alpha, "loss": loss, "cluster_sizes": np.bincount(labels).tolist(),
            "seconds": {"features": t_features, "whitening": t_whitening, "mixtures": t_gmm, "total": t_total},
        }
        # mixture components in the order of the final labels, empty ones dropped, so that the
        # saved mixture alone reproduces the labels
        order = np.array([raw[labels == j][0] for j in range(k)])
        self._write_iteration(state_dir, i, classifier, pca, mixture, order, labels, posterior, z, state)
        log.info("iteration %d: K=%d DDBI=%.4f agreement=%s (%.0f s)%s", i, k, score,
                 "-" if agree is None else f"{agree:.4f}", t_total,
                 f" converged: the labels of iteration {i - 2} again (agreement {agree_two_back:.4f})" if cycle
                 else " converged" if converged else "")
        return finished, classifier, labels

    def _write_iteration(self, state_dir, i, classifier, pca, mixture, order, labels, posterior, z, state) -> None:
        final = iteration_dir(state_dir, i)
        tmp = state_dir / f".iter_{i:03d}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        if not state["finished"]:
            classifier.save(tmp / "model.keras")
        np.savez(tmp / "mixture.npz", pca_mean=pca.mean_, pca_components=pca.components_,
                 weights=mixture.weights_[order] / mixture.weights_[order].sum(), means=mixture.means_[order],
                 covariances=mixture.covariances_[order])
        np.save(tmp / "labels.npy", labels.astype(np.int64))
        np.save(tmp / "posterior.npy", posterior.astype(np.float32))
        np.save(tmp / "z.npy", z.astype(np.float32))
        (tmp / "state.json").write_text(json.dumps(state, indent=2, default=_json_default))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)

    @staticmethod
    def _clean_partial(state_dir: Path) -> None:
        for p in state_dir.glob(".iter_*.partial"):
            shutil.rmtree(p, ignore_errors=True)

    def _load_result(self, state_dir: Path) -> "DiscaEM":
        done = completed_iterations(state_dir)
        history = [read_state(state_dir, i) for i in done]
        best, key = result_iteration(history)
        self.history_ = history
        self.best_iteration_ = best["iteration"]
        self.ddbi_ = best[key]
        self.labels_ = np.load(iteration_dir(state_dir, self.best_iteration_) / "labels.npy")
        self.posterior_ = np.load(iteration_dir(state_dir, self.best_iteration_) / "posterior.npy")
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.converged_ = bool(history[-1]["converged"])
        self.state_dir_ = state_dir
        return self


# ---------------------------------------------------------------- results

def params_from_settings(settings: dict) -> dict:
    """DiscaParams keywords from a configuration ``disca`` section (workflow-only keys dropped)."""
    names = {"blocks": "n_blocks"}
    skip = {"iterations_per_job", "init_from"}
    return {names.get(k, k): v for k, v in settings.items() if k not in skip}


def export_result(state_dir, store_path, out_dir) -> dict:
    """Write the lowest-DDBI iteration's labels (CSV and STAR), features and model bundle.

    Outputs in ``out_dir``: ``labels.csv`` and ``labels.star`` (particle index, tomogram, x/y/z in
    unbinned pixels, class, posterior), ``features.h5`` (the 1,024-d features of the bundle's network),
    ``history.json`` and ``bundle/``.
    """
    import h5py

    from discaflow.bundle import labels_table, load_bundle, predict_store, write_bundle
    from discaflow.io.atomic import atomic_path
    from discaflow.io.star import write_star
    from discaflow.model import load_model

    state_dir, out_dir = Path(state_dir), Path(out_dir)
    em = DiscaEM()._load_result(state_dir)
    b = em.best_iteration_
    model_dir = iteration_dir(state_dir, b - 1) if b > 0 else state_dir / "init"
    classifier = load_model(model_dir / "model.keras")
    with np.load(iteration_dir(state_dir, b) / "mixture.npz") as m:
        mixture = {k: m[k] for k in m.files}
    out_dir.mkdir(parents=True, exist_ok=True)
    with SubtomogramStore(store_path) as store:
        info = {"k": em.n_clusters_, "best_iteration": b, "ddbi": em.ddbi_, "store": Path(store_path).name,
                "params": json.loads((state_dir / "params.json").read_text())["params"]}
        write_bundle(out_dir / "bundle", classifier.get_layer("yopo_features"), mixture, store.box_vox, store.voxel_size_A, info)
        bundle = load_bundle(out_dir / "bundle")
        labels, posterior, feats = predict_store(bundle, store)
        table = labels_table(store, em.labels_, em.posterior_)
    # The bundle reproduces the best iteration's labels (same network, PCA and mixture).
    agree = float(np.mean(labels == em.labels_))
    if agree < 0.99:
        log.warning("the exported bundle reproduces %.1f %% of the best iteration's labels", 100 * agree)
    with atomic_path(out_dir / "labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_star(out_dir / "labels.star", table)
    with atomic_path(out_dir / "features.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=feats, compression="gzip")
            f.create_dataset("labels", data=em.labels_)
    with atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(json.dumps(em.history_, indent=2, default=_json_default))
    return {"k": em.n_clusters_, "best_iteration": b, "ddbi": em.ddbi_, "bundle_agreement": agree}
