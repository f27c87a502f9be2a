"""YOPO ("you only pool once"), the DISCA feature network, in Keras 3.

Reference architecture (the defaults): input b³×1 → GaussianDropout(0.5) → 10 blocks of Conv3D 3³
'valid' with 64, 80, …, 208 filters, ELU, BatchNorm, each block also feeding a GlobalMaxPooling3D
branch → the branches concatenated (1,360 values) → BatchNorm → Dense 1024 (the features; no
activation) → Dense K softmax head. Orthogonal kernel initialiser, zero biases. Global max pooling
of every block makes the features invariant to translation. Width and depth are parameters so tests
and CPU runs can use a narrow network.
"""

from __future__ import annotations

import logging
import os
import weakref

import numpy as np

from discaflow.cpu import BFLOAT16_CPU_FLAGS, cpu_has_native_bfloat16, prefer_onednn  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # before TensorFlow is imported (disca.mstep.configure_tensorflow turns it off for deterministic runs)

import keras  # noqa: E402
from keras import layers  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
log = logging.getLogger(__name__)


def set_precision(precision: str) -> None:
    """Global Keras dtype policy: float32, mixed_bfloat16 (a CPU with bfloat16 instructions) or
    mixed_float16 (GPU). Warns when mixed_bfloat16 would run emulated on a CPU without them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "mixed_bfloat16" and not cpu_has_native_bfloat16():
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            log.warning("mixed_bfloat16 on a CPU without bfloat16 instructions (%s): TensorFlow emulates it, "
                        "many times slower than float32 — set precision to float32 or auto",
                        "/".join(sorted(BFLOAT16_CPU_FLAGS)))
    keras.mixed_precision.set_global_policy(precision)


@keras.saving.register_keras_serializable(package="discaflow")
class FusedBatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training-mode pass on 5-D inputs (axis -1, no mask or
    renorm, TensorFlow backend) runs TensorFlow's fused batch-normalisation kernel in the input's
    precision (statistics in float32 inside the kernel); inference and every other case are Keras's own.
    Keras 3 normalises with separate element-wise ops in float32 and, under mixed_bfloat16, casts the
    activations up and back around them: most of a bfloat16 training step's non-convolution time on
    CPU. Same moving-statistics update as Keras (momentum, biased batch variance); same outputs and
    gradients (tests/test_disca.py). Training 85 → 106 subtomograms/s in mixed_bfloat16 (narrow YOPO,
    2 cores; bench/speed.py)."""

    def call(self, inputs, training=None, mask=None):
        if (not (training and self.trainable) or mask is not None or self.renorm or len(inputs.shape) != 5
                or self.axis not in (-1, 4) or keras.backend.backend() != "tensorflow"):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        if self.synchronized and tf.distribute.get_replica_context() is not None \
                and tf.distribute.get_replica_context().num_replicas_in_sync > 1:
            return super().call(inputs, training=training, mask=mask)  # Keras all-reduces the batch statistics

        gamma = self.gamma if self.scale else tf.ones_like(self.moving_mean)
        beta = self.beta if self.center else tf.zeros_like(self.moving_mean)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, epsilon=self.epsilon,
                                                             data_format="NDHWC", is_training=True)
        # the kernel returns the unbiased variance; Keras keeps the biased one
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
        variance = variance * (n - 1.0) / n
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return keras.ops.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="discaflow")
class ReplicaGaussianDropout(layers.GaussianDropout):
    """``keras.layers.GaussianDropout`` whose noise differs between the replicas of a multi-device
    strategy: Keras's layer draws the same noise on every replica, so the i-th subtomogram of each
    device's share would get the same noise field (tests/test_devices.py). On one device, and for
    networks saved with Keras's layer, Keras's own noise."""

    def call(self, inputs, training=False):
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        if not (training and self.rate > 0) or ctx is None or ctx.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        seed = tf.random.experimental.stateless_fold_in(tf.cast(self.seed_generator.next(), tf.int64),
                                                        ctx.replica_id_in_sync_group)
        stddev = (self.rate / (1.0 - self.rate)) ** 0.5
        return inputs * tf.random.stateless_normal(tf.shape(inputs), seed, mean=1.0, stddev=stddev, dtype=inputs.dtype)


def block_filters(n_blocks: int = 10, first: int = 64, step: int = 16) -> list[int]:
    return [first + step * i for i in range(n_blocks)]


def build_feature_model(box_vox: int = 24, n_blocks: int = 10, first_filters: int = 64, filter_step: int = 16,
                        feature_dim: int = 1024, dropout_rate: float = 0.5, seed: int = 0) -> keras.Model:
    """The YOPO feature extractor: (b, b, b, 1) → ``feature_dim`` features (float32)."""
    if box_vox - 2 * n_blocks < 1:
        raise ValueError(f"a {box_vox}-voxel box allows at most {(box_vox - 1) // 2} 'valid' 3³ blocks, got {n_blocks}")
    init = keras.initializers.Orthogonal(seed=seed)
    inp = keras.Input(shape=(box_vox, box_vox, box_vox, 1), name="subtomogram")
    x = ReplicaGaussianDropout(dropout_rate, seed=seed, name="gaussian_dropout")(inp)
    pooled = []
    for i, f in enumerate(block_filters(n_blocks, first_filters, filter_step)):
        x = layers.Conv3D(f, 3, padding="valid", kernel_initializer=init, bias_initializer="zeros", name=f"conv{i + 1}")(x)
        x = layers.ELU(name=f"elu{i + 1}")(x)
        x = FusedBatchNormalization(name=f"bn{i + 1}")(x)
        pooled.append(layers.GlobalMaxPooling3D(name=f"max{i + 1}")(x))
    m = layers.Concatenate(name="concat")(pooled) if len(pooled) > 1 else pooled[0]
    m = layers.BatchNormalization(name="bn_concat")(m)
    out = layers.Dense(feature_dim, kernel_initializer=init, bias_initializer="zeros", name="features", dtype="float32")(m)
    return keras.Model(inp, out, name="yopo_features")


def build_head(feature_dim: int, k: int, seed: int = 0) -> keras.Model:
    """The softmax classifier on the features."""
    inp = keras.Input(shape=(feature_dim,), name="features_in")
    out = layers.Dense(k, activation="softmax", kernel_initializer=keras.initializers.Orthogonal(seed=seed),
                       bias_initializer="zeros", dtype="float32", name="softmax")(inp)
    return keras.Model(inp, out, name=f"head_k{k}")


def build_classifier(feature_model: keras.Model, head: keras.Model) -> keras.Model:
    """Feature network followed by the head, trained end to end in the M-step."""
    inp = keras.Input(shape=feature_model.input_shape[1:], name="subtomogram_in")
    return keras.Model(inp, head(feature_model(inp)), name="yopo")


def load_model(path) -> keras.Model:
    """A network saved by discaflow (``.keras``), loaded with ``safe_mode=True``; importing this module
    has registered the network's own layers (FusedBatchNormalization) that the file names."""
    return keras.models.load_model(path, safe_mode=True)


def replicas(model: keras.Model) -> int:
    """Devices the model's variables are mirrored on (1 outside a multi-device strategy)."""
    return model.distribute_strategy.num_replicas_in_sync


def _per_replica(strategy, *arrays):
    """The arrays split along their first axis into one consecutive part per replica, in replica
    order (a distributed step then sees the batch as one device would, in the same order)."""
    parts = [np.array_split(a, strategy.num_replicas_in_sync) for a in arrays]
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(p[ctx.replica_id_in_sync_group] for p in parts))


def synchronize_batchnorm(model: keras.Model) -> None:
    """Batch statistics all-reduced over the replicas while training (Keras's ``synchronized``): a
    batch split over devices is normalised as one device normalises it, and every replica keeps the
    same moving statistics (unsynchronised, they drift apart: tests/test_devices.py)."""
    for bn in _layers_of(model, layers.BatchNormalization):
        bn.synchronized = True


def train_batch(model: keras.Model, x, y) -> float:
    """One training step of a compiled model on (x, y); under a multi-device strategy each replica
    takes a consecutive share of the batch (``train_on_batch`` would give each the whole batch) and
    batch statistics are all-reduced (synchronize_batchnorm). The batch's mean loss."""
    if replicas(model) == 1:
        return float(model.train_on_batch(x, y, return_dict=True)["loss"])
    if len(x) < replicas(model):
        raise ValueError(f"a batch of {len(x)} cannot be split over {replicas(model)} devices")
    if model.train_function is None:  # before the step is traced
        synchronize_batchnorm(model)
    if not model.optimizer.built:  # its variables are made here, mirrored, not inside the replicas' step
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    model.make_train_function()
    model.reset_metrics()
    return float(model.train_function([(*_per_replica(model.distribute_strategy, x, y), None)])["loss"])


def predict_batch(feature_model: keras.Model, x, pad_to: int | None = None):
    """Features of one batch of subtomograms, shape (n, b, b, b) or (n, b, b, b, 1), in inference mode,
    as a float32 array. Runs Keras's compiled predict step (traced once per model and batch shape), not
    an eager call (240 → 380–470 subtomograms/s, narrow YOPO, 2 cores; bench/speed.py).
    ``pad_to``: a shorter batch (the last of a pass) is padded with zeros to this many, so that a model
    is traced for one shape only (inference treats samples independently; the padding is dropped)."""
    x = np.asarray(x, np.float32)
    x = x if x.ndim == 5 else x[..., None]
    n = len(x)
    pad_to = max(pad_to or 0, replicas(feature_model))
    if 0 < n < pad_to:
        x = np.concatenate([x, np.zeros((pad_to - n, *x.shape[1:]), np.float32)])
    if replicas(feature_model) > 1:  # each replica a share (the outputs come back concatenated in order)
        (x,) = _per_replica(feature_model.distribute_strategy, x)
    return np.asarray(feature_model.predict_on_batch(x), np.float32)[:n]


def _layers_of(model: keras.Model, kind) -> list:
    found = []
    for layer in model.layers:
        if isinstance(layer, kind):
            found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_layers_of(layer, kind))
    return found


def reset_random_state(model: keras.Model) -> None:
    """Put every GaussianDropout layer's random stream back at its start (state ``[seed, 0]``), where
    a network loaded from disk has it (Keras does not save that state). An EM iteration starts from
    here whether its network was kept in memory or reloaded by a resumed run, so both draw the same
    noise."""
    for layer in _layers_of(model, layers.GaussianDropout):
        if layer.seed is None:
            raise ValueError(f"{layer.name}: a GaussianDropout layer without a seed cannot be reset")
        layer.seed_generator.state.assign(np.array([layer.seed, 0], dtype=layer.seed_generator.state.dtype))


# One compiled training-mode pass per feature network (recalibrate_batchnorm), kept while the network
# lives: the network of an EM run is recalibrated after every M-step.
_TRAINING_PASSES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _training_pass(feature_model: keras.Model):
    """A traced ``feature_model(x, training=True)`` for any batch size; traced while
    recalibrate_batchnorm has set every batch norm's momentum and the input dropout's rate to 0, so the
    graph keeps those values (the moving statistics become each batch's own statistics)."""
    step = _TRAINING_PASSES.get(feature_model)
    if step is None:
        import tensorflow as tf

        ref = weakref.ref(feature_model)  # the cache must not keep the network alive
        spec = tf.TensorSpec((None, *feature_model.input_shape[1:]), tf.float32)
        step = tf.function(lambda x: ref()(x, training=True), input_signature=[spec])
        _TRAINING_PASSES[feature_model] = step
    return step


def recalibrate_batchnorm(feature_model: keras.Model, batches) -> int:
    """Set every BatchNormalization layer's moving mean and variance to the average of its batch
    statistics over ``batches`` (arrays of shape (n, b, b, b) or (n, b, b, b, 1)), computed in
    training mode with the input dropout off; returns the number of subtomograms used.

    Why: inference-mode features use the moving statistics, which follow the weights only slowly
    (momentum 0.99, a few dozen steps per EM iteration on small sets), so after an M-step they describe
    an older network. Measured on the bench-disca set (narrow YOPO trained with the true labels, 800
    subtomograms, learning rate 1e-3): held-out accuracy after 5 epochs 0.505 with the moving
    statistics, 0.930 with recalibrated ones. ("Precise BN", Wu & Johnson 2021.)

    The pass is compiled once per network (eager, it took 4.7 s of a 39 s iteration; bench/speed.py).
    """
    norms = _layers_of(feature_model, layers.BatchNormalization)
    drops = _layers_of(feature_model, layers.GaussianDropout)
    saved = [(bn.momentum, bn.trainable) for bn in norms]
    rates = [d.rate for d in drops]
    n, seen = 0, 0
    sums = [[np.zeros(bn.moving_mean.shape, np.float64), np.zeros(bn.moving_variance.shape, np.float64)] for bn in norms]
    try:
        for d in drops:
            d.rate = 0.0
        for bn in norms:
            bn.trainable = True
            bn.momentum = 0.0  # moving statistics := this batch's statistics
        step = _training_pass(feature_model)
        for x in batches:
            x = np.asarray(x, np.float32)
            step(x if x.ndim == 5 else x[..., None])
            for (mean, var), bn in zip(sums, norms):
                mean += np.asarray(bn.moving_mean)
                var += np.asarray(bn.moving_variance)
            n += len(x)
            seen += 1
    finally:
        for bn, (momentum, trainable) in zip(norms, saved):
            bn.momentum, bn.trainable = momentum, trainable
        for d, rate in zip(drops, rates):
            d.rate = rate
    if seen:  # each layer's statistics: the mean over the batches (every batch weighs the same)
        for (mean, var), bn in zip(sums, norms):
            bn.moving_mean.assign((mean / seen).astype(np.float32))
            bn.moving_variance.assign((var / seen).astype(np.float32))
    return n
