"""Data-parallel training on several devices, exercised on two logical CPU devices (the multi-GPU code
path without a GPU), and the mixed_float16 (GPU) training step's loss scaling, on a CPU."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, STRUCTURES

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}

# Logical devices must be configured before TensorFlow initialises its runtime: a fresh process.
TWO_DEVICES = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from discaflow import model as M
from discaflow.disca.mstep import device_strategy

M.set_precision("float32")
out = {}
names = [d.name for d in tf.config.list_logical_devices("CPU")]
two = device_strategy()
out["replicas"] = two.num_replicas_in_sync


def make(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        features = M.build_feature_model(16, 3, 4, 4, 16, dropout_rate=0.0, seed=0)
        clf = M.build_classifier(features, M.build_head(16, 3, seed=0))
        clf.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CategoricalHinge())
    return clf


rng = np.random.default_rng(0)
x = rng.standard_normal((3, 10, 16, 16, 16, 1)).astype(np.float32)  # three batches of 10
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (3, 10))]
one, dist, drifting = make(tf.distribute.OneDeviceStrategy(names[0])), make(two), make(two)
start = [w.copy() for w in dist.get_weights()]
out["loss_one"] = [M.train_batch(one, x[i], y[i]) for i in range(3)]
out["loss_two"] = [M.train_batch(dist, x[i], y[i]) for i in range(3)]
drifting.make_train_function()  # Keras's distributed step on the same shares, batch statistics per replica
for i in range(3):
    drifting.train_function([(*M._per_replica(two, x[i], y[i]), None)])
out["weights_moved"] = max(float(np.abs(a - b).max()) for a, b in zip(start, dist.get_weights()))
out["weights_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(one.get_weights(), dist.get_weights()))
f1, f2 = one.get_layer("yopo_features"), dist.get_layer("yopo_features")
out["features_max_diff"] = float(np.abs(M.predict_batch(f1, x[0], pad_to=16) - M.predict_batch(f2, x[0], pad_to=16)).max())
out["features_rows"] = int(len(M.predict_batch(f2, x[0][:1])))


def replica_spread(model):
    v = model.get_layer("yopo_features").get_layer("bn1").moving_mean.value
    a, b = two.experimental_local_results(v)
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


out["bn_replica_spread_synchronized"] = replica_spread(dist)
out["bn_replica_spread_unsynchronized"] = replica_spread(drifting)
# the input dropout draws other noise on each replica (Keras's layer: the same on both)
with two.scope():
    drop, plain = M.ReplicaGaussianDropout(0.5, seed=3), keras.layers.GaussianDropout(0.5, seed=3)
ones = np.ones((4, 6), np.float32)
for name, layer in (("replica_dropout", drop), ("keras_dropout", plain)):
    r0, r1 = two.experimental_local_results(two.run(lambda v: layer(v, training=True), args=M._per_replica(two, ones)))
    out[name + "_replicas_differ"] = bool(np.abs(np.asarray(r0) - np.asarray(r1)).max() > 0)
single, reference = M.ReplicaGaussianDropout(0.5, seed=3), keras.layers.GaussianDropout(0.5, seed=3)
out["one_device_dropout_is_keras"] = bool(np.array_equal(np.asarray(single(ones, training=True)),
                                                         np.asarray(reference(ones, training=True))))
try:
    M.train_batch(dist, x[0][:1], y[0][:1])
except ValueError as e:
    out["one_sample_refused"] = str(e)

# a DISCA run on the two devices, stopped after two iterations and resumed (the network reloaded into
# the strategy), then its result exported and predicted on one device
from discaflow.disca import Disca, export_result
from discaflow.io.store import SubtomogramStore
from discaflow.simulate.imaging import Imaging
from discaflow.simulate.structures import load_structure
from discaflow.simulate.subtomograms import simulate_subtomograms

work, structures = sys.argv[1], sys.argv[2]
store = work + "/set.h5"
simulate_subtomograms([load_structure(f"{structures}/{n}.mrc", 26.0) for n in ("4v4r", "3j9i", "1bxn")], store,
                      Imaging(26.0, snr=3.0), per_class=20, box_vox=16, progress=False)
params = dict(blocks=4, first_filters=8, filter_step=8, feature_dim=64, max_iterations=4, warmup_iterations=2,
              k_candidates=[2, 3, 4], pca_components=4, precision="float32", batch_size=16, train_per_cluster=15)
first = Disca(**params).fit(store, work + "/state", max_new_iterations=2)
out["stopped_converged"] = first.converged_
em = Disca(**params).fit(store, work + "/state")
out["history_devices"] = [h["devices"] for h in em.history_]
out["rss_keys"] = sorted(em.history_[0]["rss_peak_mb"])
out["k"] = em.n_clusters_
out["export"] = export_result(work + "/state", store, work + "/out")
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_training_on_two_devices_equals_one_device_and_a_run_resumes(tmp_path):
    """Two logical CPU devices (tf.distribute.MirroredStrategy, as on several GPUs): each replica
    takes half of a batch, batch statistics are all-reduced, so a training step gives the weights one
    device gives on the whole batch; a DISCA run trains on both devices, resumes after a stop and
    exports a bundle that a single device reproduces."""
    run = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(tmp_path), str(STRUCTURES)], env=ENV,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["replicas"] == 2
    # same losses and weights as one device on the whole batch (float32 sums in another order)
    assert max(abs(a - b) for a, b in zip(out["loss_one"], out["loss_two"])) < 1e-5
    assert out["weights_moved"] > 1e-3  # it trained
    assert out["weights_max_diff"] < 1e-5
    assert out["features_max_diff"] < 1e-4 and out["features_rows"] == 1
    # synchronised batch statistics keep the replicas' moving statistics equal; per-replica ones drift
    assert out["bn_replica_spread_synchronized"] == 0.0
    assert out["bn_replica_spread_unsynchronized"] > 1e-6
    assert "cannot be split over 2 devices" in out["one_sample_refused"]
    assert out["replica_dropout_replicas_differ"] and not out["keras_dropout_replicas_differ"]
    assert out["one_device_dropout_is_keras"]
    assert out["stopped_converged"] is False
    assert out["history_devices"] == [2] * len(out["history_devices"]) and len(out["history_devices"]) >= 3
    assert {"features", "mixtures"} <= set(out["rss_keys"])
    assert out["export"]["bundle_agreement"] >= 0.99 and out["export"]["k"] == out["k"]


def test_mixed_float16_training_scales_the_loss_and_trains(tmp_path):
    """precision mixed_float16 (GPU): the compiled M-step optimiser is Keras's LossScaleOptimizer around
    Nadam (float16 gradients underflow without it); the learning-rate schedule reaches the inner
    optimiser; a step on a CPU keeps the weights finite and changes them; the network saves and loads
    with its loss scale."""
    import numpy as np

    from discaflow import model as M
    from discaflow.disca import DiscaConfig
    from discaflow.disca.mstep import Trainer

    keras = M.keras
    try:
        M.set_precision("mixed_float16")
        c = DiscaConfig(blocks=3, first_filters=4, filter_step=4, feature_dim=16, precision="mixed_float16")
        trainer = Trainer(store=[], config=c)
        features = M.build_feature_model(16, c.blocks, c.first_filters, c.filter_step, c.feature_dim)
        clf = trainer.compile(M.build_classifier(features, M.build_head(c.feature_dim, 3)))
        assert isinstance(clf.optimizer, keras.optimizers.LossScaleOptimizer)
        assert clf.get_layer("yopo_features").get_layer("conv1").compute_dtype == "float16"
        clf.optimizer.learning_rate.assign(3e-4)
        assert np.isclose(float(clf.optimizer.inner_optimizer.learning_rate), 3e-4)
        before = [np.array(w) for w in clf.trainable_weights]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 16, 16, 16, 1)).astype(np.float32)
        loss = M.train_batch(clf, x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)])
        assert np.isfinite(loss)
        after = [np.array(w) for w in clf.trainable_weights]
        assert all(np.all(np.isfinite(w)) for w in after)
        assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))  # every weight learned
        assert float(clf.optimizer.dynamic_scale) > 1  # the loss scale in use
        clf.save(tmp_path / "model.keras")
        again = M.load_model(tmp_path / "model.keras")
        assert isinstance(again.optimizer, keras.optimizers.LossScaleOptimizer)
        assert float(again.optimizer.dynamic_scale) == float(clf.optimizer.dynamic_scale)
    finally:
        M.set_precision("float32")
