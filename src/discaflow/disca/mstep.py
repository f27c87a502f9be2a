"""DISCA's M-step and the TensorFlow around it: features of a store, one training epoch on the
smoothed labels with rotated copies, the softmax head's refit, BatchNorm recalibration."""

from __future__ import annotations

import functools
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from discaflow.disca.config import DiscaConfig

log = logging.getLogger(__name__)

DROPOUT_RATE = 0.5  # YOPO's input dropout (paper)
HEAD_LEARNING_RATE = 1e-4  # Nadam, the new softmax head on frozen features when K changes
HEAD_EPOCHS = 10


def prefetch(fn, items, workers: int = 2, depth: int = 4):
    """Yield fn(item) in order, computing up to ``depth`` ahead on ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


def augmentation_workers() -> int:
    """Threads that read and rotate batches ahead of the network: the CPUs this process may use
    (SLURM's cpus-per-task), 2 to 8 (one thread rotates ~2,000 24³ boxes/s: bench/speed.py)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 2
    return max(2, min(8, n))


def store_features(feature_model, store, batch_size: int = 128, check=None, progress=None) -> np.ndarray:
    """Features (N × D, float32, dropout off) of every subtomogram of an open store; NaN or Inf in the
    store is an InputError. ``check()`` is called between batches (a stop flag), ``progress(done, n)``."""
    from discaflow.model import predict_batch

    n = len(store)
    out = np.empty((n, feature_model.output_shape[-1]), np.float32)
    starts = range(0, n, batch_size)
    for start, x in zip(starts, prefetch(lambda s: store.read(s, s + batch_size, finite=True), starts)):
        if check:
            check()
        out[start: start + len(x)] = predict_batch(feature_model, x, pad_to=batch_size)
        if progress:
            progress(min(n, start + batch_size), n)
    return out


class Trainer:
    """Streams a store through a run's Keras models (``check()`` between batches: the stop flag;
    ``devices``: the replicas of the strategy the models are built in)."""

    def __init__(self, store, config: DiscaConfig, check=lambda: None, devices: int = 1):
        from discaflow import model as M

        self.M, self.store, self.config, self.check, self.devices = M, store, config, check, devices
        self.n = len(store)

    def features(self, feature_model, what: str = "features") -> np.ndarray:
        from discaflow.progress import Progress

        p = Progress(what, self.n)
        try:
            return store_features(feature_model, self.store, check=self.check, progress=p.to)
        finally:
            p.close()

    def train_epoch(self, classifier, targets: np.ndarray, learning_rate: float, epoch_seed: int, progress=None,
                    labels: np.ndarray | None = None) -> float:
        """One epoch over the subtomograms (``labels`` given: at most ``train_per_cluster`` of each
        cluster) and ``rotation_copies`` randomly rotated copies of each, read and rotated on worker
        threads while the network trains; the mean loss."""
        from discaflow.augment import random_rotation_batch

        batches, rng = self.epoch_batches(epoch_seed, labels)
        seeds = rng.integers(0, 2**63 - 1, len(batches))

        def streamed(j):
            b = batches[j]
            x = self.store.take(b[:, 0])
            rot = b[:, 1] > 0
            if rot.any():
                x[rot] = random_rotation_batch(x[rot], np.random.default_rng(seeds[j]))
            return x[..., None], targets[b[:, 0]]

        workers = augmentation_workers()
        return self.train_on(classifier, prefetch(streamed, range(len(batches)), workers=workers, depth=2 * workers),
                             learning_rate, progress)

    def epoch_batches(self, epoch_seed: int, labels: np.ndarray | None = None) -> tuple[list[np.ndarray], np.random.Generator]:
        """An epoch's batches of (index, copy) pairs in a seeded random order (copy 0: the original;
        ``rotation_copies`` rotated copies each), and the generator that drew them. With ``labels``,
        a cluster larger than ``train_per_cluster`` contributes a random sample of that many, drawn
        anew each epoch. A batch too small to split over the devices (the last, at most devices − 1
        pairs) is left out."""
        c = self.config
        rng = np.random.default_rng([c.seed, epoch_seed, 17])
        chosen = self.epoch_sample(labels, rng)
        pairs = np.stack(np.meshgrid(chosen, np.arange(c.rotation_copies + 1), indexing="ij"), -1).reshape(-1, 2)
        pairs = pairs[rng.permutation(len(pairs))]
        batches = [pairs[i: i + c.batch_size] for i in range(0, len(pairs), c.batch_size)]
        return [b for b in batches if len(b) >= self.devices], rng

    def epoch_sample(self, labels: np.ndarray | None, rng: np.random.Generator | None = None) -> np.ndarray:
        """The subtomograms (sorted indices) an epoch trains on: all, or with ``labels`` at most
        ``train_per_cluster`` of each cluster (0: all)."""
        m = self.config.train_per_cluster
        if labels is None or m == 0:
            return np.arange(self.n)
        rng = rng if rng is not None else np.random.default_rng(0)
        keep = [idx if len(idx) <= m else rng.choice(idx, m, replace=False)
                for idx in (np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1))]
        return np.sort(np.concatenate(keep))

    def train_on(self, classifier, stream, learning_rate: float, progress=None) -> float:
        """Train on every (x, y) batch of ``stream`` at ``learning_rate``; the mean loss.
        ``progress``: a :class:`discaflow.progress.Progress` advanced by each batch's size."""
        classifier.optimizer.learning_rate.assign(learning_rate)
        losses = []
        for x, y in stream:
            self.check()
            losses.append(self.M.train_batch(classifier, x, y))
            if progress is not None:
                progress.advance(len(x))
        return float(np.mean(losses)) if losses else float("nan")

    def recalibrate_batchnorm(self, feature_model, iteration: int) -> None:
        """BatchNorm statistics of ``feature_model`` from ``batchnorm_samples`` random subtomograms."""
        c = self.config
        m = min(c.batchnorm_samples, self.n)
        if m <= 0:
            return
        idx = np.sort(np.random.default_rng([c.seed, iteration, 29]).choice(self.n, m, replace=False))
        chunks = [idx[s: s + c.batch_size] for s in range(0, m, c.batch_size)]

        def batches():
            for x in prefetch(self.store.take, chunks):
                self.check()
                yield x

        self.M.recalibrate_batchnorm(feature_model, batches())

    def train_head(self, head, features: np.ndarray, targets: np.ndarray, iteration: int) -> None:
        """A new softmax head fitted to the frozen features (when K changed)."""
        keras = self.M.keras
        c = self.config
        head.compile(optimizer=keras.optimizers.Nadam(HEAD_LEARNING_RATE), loss=keras.losses.CategoricalHinge())
        rng = np.random.default_rng([c.seed, iteration, 23])
        for _ in range(HEAD_EPOCHS):
            order = rng.permutation(self.n)
            for s in range(0, self.n, c.batch_size):
                self.check()
                idx = order[s: s + c.batch_size]
                if len(idx) >= self.devices:
                    self.M.train_batch(head, features[idx], targets[idx])

    def initial_classifier(self, box_vox: int, feature_model=None):
        """A compiled classifier (YOPO + a one-class head) from ``feature_model`` or a new network."""
        c, M = self.config, self.M
        if feature_model is None:
            feature_model = M.build_feature_model(box_vox, c.blocks, c.first_filters, c.filter_step, c.feature_dim,
                                                  DROPOUT_RATE, seed=c.seed)
        return self.compile(M.build_classifier(feature_model, M.build_head(c.feature_dim, 1, seed=c.seed)))

    def compile(self, classifier):
        keras = self.M.keras
        classifier.compile(optimizer=keras.optimizers.Nadam(self.config.learning_rate), loss=keras.losses.CategoricalHinge())
        classifier.optimizer.build(classifier.trainable_variables)  # saved and loaded with all its variables
        return classifier


@functools.cache
def device_strategy():
    """A ``tf.distribute.MirroredStrategy`` over the GPUs this process sees (on SLURM, the job's
    ``resources.disca_round.gpu``), or without a GPU over the logical CPU devices where more than one
    is configured (tests); None for a single device. One per process: a second strategy's collective
    keys collide with the first's (shape mismatch in a collective op, measured)."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        return None
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def resolve_precision(precision: str, deterministic: bool = False) -> str:
    """``auto``: mixed_float16 on a GPU; on a CPU mixed_bfloat16 where it has bfloat16 instructions
    (cpu.cpu_has_native_bfloat16), else float32; float32 for deterministic runs."""
    if precision != "auto":
        return precision
    if deterministic:
        return "float32"  # bfloat16 needs oneDNN, which reorders floating-point sums
    import tensorflow as tf

    from discaflow.cpu import cpu_has_native_bfloat16

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"


def configure_tensorflow(deterministic: bool = False) -> None:
    """Memory growth on GPUs and op determinism; oneDNN on (cpu.prefer_onednn), or off with one thread
    for ``deterministic`` runs (CPU sums in a fixed order): either must happen before TensorFlow is imported."""
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
