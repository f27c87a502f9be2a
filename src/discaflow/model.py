"""YOPO ("you only pool once"), the DISCA feature network, in Keras 3.

Reference architecture (the defaults): input b³×1 → GaussianDropout(0.5) → 10 blocks of Conv3D 3³
'valid' with 64, 80, …, 208 filters, ELU, BatchNorm, each block also feeding a GlobalMaxPooling3D
branch → the branches concatenated (1,360 values) → BatchNorm → Dense 1024 (the features; no
activation) → Dense K softmax head. Orthogonal kernel initialiser, zero biases. Global max pooling
of every block makes the features invariant to translation. Width and depth are parameters so tests
and CPU runs can use a narrow network.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def set_precision(precision: str) -> None:
    """Global Keras dtype policy: float32, mixed_bfloat16 (CPU with AVX-512) or mixed_float16 (GPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    keras.mixed_precision.set_global_policy(precision)


def block_filters(n_blocks: int = 10, first: int = 64, step: int = 16) -> list[int]:
    return [first + step * i for i in range(n_blocks)]


def build_feature_model(box_vox: int = 24, n_blocks: int = 10, first_filters: int = 64, filter_step: int = 16,
                        feature_dim: int = 1024, dropout_rate: float = 0.5, seed: int = 0) -> keras.Model:
    """The YOPO feature extractor: (b, b, b, 1) → ``feature_dim`` features (float32)."""
    if box_vox - 2 * n_blocks < 1:
        raise ValueError(f"a {box_vox}-voxel box allows at most {(box_vox - 1) // 2} 'valid' 3³ blocks, got {n_blocks}")
    init = keras.initializers.Orthogonal(seed=seed)
    inp = keras.Input(shape=(box_vox, box_vox, box_vox, 1), name="subtomogram")
    x = layers.GaussianDropout(dropout_rate, seed=seed, name="gaussian_dropout")(inp)
    pooled = []
    for i, f in enumerate(block_filters(n_blocks, first_filters, filter_step)):
        x = layers.Conv3D(f, 3, padding="valid", kernel_initializer=init, bias_initializer="zeros", name=f"conv{i + 1}")(x)
        x = layers.ELU(name=f"elu{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
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
