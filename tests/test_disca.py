"""The DISCA engine: YOPO, rotations with noise fill, the EM loop, checkpoints, prediction."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from discaflow.augment import random_rotation_batch, rotate_with_noise_fill
from discaflow.errors import InputError
from discaflow.io.store import StoreWriter, SubtomogramStore

from conftest import REPO, STRUCTURES

TINY = {"blocks": 4, "first_filters": 8, "filter_step": 8, "feature_dim": 64, "max_iterations": 6,
        "learning_rate": 1e-3, "epochs_per_iteration": 1, "warmup_iterations": 2, "k_candidates": [2, 3, 4, 5],
        "pca_components": 4, "precision": "float32"}
# The test sets: 16³ boxes at 26 Å/voxel (the smallest box the ribosome fits with its shifts), so
# that a deterministic (single-threaded, oneDNN off) run of TINY costs far less than the 24³ at 16 Å it
# used before: measured 2026-12-02 in clean-clone CI runs, the tiny EM fixture 364 s → 56 s, both ending
# at K = 3, homogeneity 1.0 (with 2 epochs per iteration the 16³ run ended at K = 4, homogeneity 1.0;
# hence 1 epoch).
BOX, VOXEL_A = 16, 26.0


def _simulate(path, per_class):
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import simulate_subtomograms

    structures = [load_structure(STRUCTURES / f"{n}.mrc", VOXEL_A) for n in ("4v4r", "3j9i", "1bxn")]
    simulate_subtomograms(structures, path, Imaging(VOXEL_A, snr=3.0), per_class=per_class, box_vox=BOX,
                          progress=False)
    return path


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """3 structures × 20 subtomograms (SNR 3) for the checkpoint tests."""
    return _simulate(tmp_path_factory.mktemp("disca_small") / "small.h5", 20)


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """3 structures × 50 subtomograms of 16³ at SNR 3 (high), 26 Å/voxel."""
    return _simulate(tmp_path_factory.mktemp("disca") / "three.h5", 50)


def test_yopo_reference_shape():
    from discaflow.model import build_feature_model, build_classifier, build_head

    m = build_feature_model()  # the reference: 10 blocks, 64..208 filters, 1024 features
    assert m.output_shape == (None, 1024)
    assert m.get_layer("concat").output.shape[-1] == sum(range(64, 209, 16)) == 1360
    clf = build_classifier(m, build_head(1024, 5))
    assert clf.output_shape == (None, 5)
    with pytest.raises(ValueError):
        build_feature_model(box_vox=16, n_blocks=10)


def test_yopo_features_are_translation_invariant():
    from discaflow.model import build_feature_model, set_precision

    set_precision("float32")
    m = build_feature_model(24, n_blocks=4, first_filters=8, filter_step=4, feature_dim=32)
    obj = np.zeros((24, 24, 24), np.float32)
    rng = np.random.default_rng(0)
    obj[9:15, 8:14, 10:15] = rng.standard_normal((6, 6, 5))
    shifted = np.roll(obj, (2, -1, 1), axis=(0, 1, 2))  # empty margins: nothing wraps
    f = np.asarray(m(np.stack([obj, shifted])[..., None], training=False))
    np.testing.assert_allclose(f[0], f[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_fused_batchnorm_computes_what_the_keras_layer_does(precision, tmp_path):
    """FusedBatchNormalization (model.py: a faster training kernel) against Keras's BatchNormalization,
    in a compiled graph as training runs it (oneDNN rewrites graphs, not eager ops; a pooling kernel tried
    with it lost gradients only there, in bfloat16): outputs, moving statistics, gradients; save and load."""
    import keras
    import tensorflow as tf

    from discaflow.model import FusedBatchNormalization, set_precision

    set_precision(precision)
    try:
        rng = np.random.default_rng(1)
        x = tf.constant((2.0 + 3.0 * rng.standard_normal((4, 10, 9, 11, 16))).astype(np.float32))
        w = tf.constant(rng.standard_normal((4, 10, 9, 11, 16)).astype(np.float32))
        layers = FusedBatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
        results = []
        for layer in layers:
            layer.build(x.shape)
            layer.gamma.assign(np.linspace(-1.0, 1.5, 16))  # the same non-trivial weights in both
            layer.beta.assign(np.linspace(0.3, -0.2, 16))

            @tf.function
            def step(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.cast(layer(tf.cast(x, layer.compute_dtype), training=True), tf.float32)
                    loss = tf.reduce_sum(y * w)
                return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

            y, grads = step(x)
            results.append([y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
        tol = 1e-4 if precision == "float32" else 3e-2  # bfloat16 keeps 8 bits of mantissa
        for ours, theirs in zip(*results):
            ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
            np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()))

        inp = keras.Input((10, 9, 11, 16))
        model = keras.Model(inp, FusedBatchNormalization()(inp))
        model.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
        np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    finally:
        set_precision("float32")


def test_predict_batch_pads_a_short_batch_without_changing_its_features():
    from discaflow.model import build_feature_model, predict_batch, set_precision

    set_precision("float32")
    m = build_feature_model(12, n_blocks=2, first_filters=4, filter_step=4, feature_dim=8)
    x = np.random.default_rng(3).standard_normal((5, 12, 12, 12)).astype(np.float32)
    padded = predict_batch(m, x, pad_to=8)
    assert padded.shape == (5, 8) and padded.dtype == np.float32
    np.testing.assert_allclose(padded, np.asarray(m(x[..., None], training=False)), rtol=1e-4, atol=1e-5)


def test_reset_random_state_gives_a_kept_network_the_dropout_noise_of_a_reloaded_one(tmp_path):
    """An EM run keeps its network in memory between iterations; a resumed run reloads it, and Keras
    does not save the input dropout's random stream. After reset_random_state both draw the same noise."""
    from discaflow.model import build_feature_model, load_model, reset_random_state, set_precision

    set_precision("float32")
    m = build_feature_model(12, n_blocks=2, first_filters=4, filter_step=4, feature_dim=8, seed=3)
    x = np.ones((2, 12, 12, 12, 1), np.float32)
    m.save(tmp_path / "m.keras")
    first = np.asarray(m(x, training=True))
    second = np.asarray(m(x, training=True))
    assert not np.allclose(first, second)  # the stream moved on
    reloaded = load_model(tmp_path / "m.keras")
    reset_random_state(m)
    # (batch statistics are the same for the same input; the noise is what could differ)
    np.testing.assert_array_equal(np.asarray(m(x, training=True)), np.asarray(reloaded(x, training=True)))


def test_batchnorm_recalibration_matches_the_data():
    import keras

    from discaflow.model import build_feature_model, recalibrate_batchnorm, set_precision

    set_precision("float32")
    m = build_feature_model(12, n_blocks=2, first_filters=4, filter_step=4, feature_dim=8)
    rng = np.random.default_rng(0)
    data = (5.0 + 3.0 * rng.standard_normal((96, 12, 12, 12))).astype(np.float32)
    bn1 = keras.Model(m.input, m.get_layer("bn1").output)

    def channel_moments():
        out = np.asarray(bn1(data[..., None], training=False))
        return out.mean(axis=(0, 1, 2, 3)), out.std(axis=(0, 1, 2, 3))

    mean, std = channel_moments()
    assert np.abs(mean).max() > 0.5  # fresh moving statistics (0, 1) do not describe these data
    used = recalibrate_batchnorm(m, (data[i: i + 32] for i in range(0, 96, 32)))
    assert used == 96
    mean, std = channel_moments()
    np.testing.assert_allclose(mean, 0.0, atol=0.05)
    np.testing.assert_allclose(std, 1.0, atol=0.05)
    # the layers are left as they were: momentum, dropout rate, and inference unaffected by dropout
    assert m.get_layer("bn1").momentum == 0.99
    assert m.get_layer("gaussian_dropout").rate == 0.5


def test_rotation_with_noise_fill():
    rng = np.random.default_rng(0)
    vol = np.zeros((24, 24, 24), np.float32)
    vol[12, 12, 16] = 1.0  # a point at x = +4 from the centre
    rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)  # x -> y
    out, filled = rotate_with_noise_fill(vol, rz90, rng)
    inside = ~filled
    z, y, x = np.unravel_index(np.argmax(np.where(inside, out, -np.inf)), out.shape)
    assert (z, y, x) == (12, 16, 12)
    # a 90° turn about z of an even box (centre n // 2) brings in one face from outside; a general
    # rotation fills the corners, always with N(0, 1)
    assert filled.sum() == 24 * 24
    batch = rng.standard_normal((40, 24, 24, 24)).astype(np.float32) * 0  # zeros: only the fill is non-zero
    rotated = random_rotation_batch(batch, rng)
    nonzero = rotated[rotated != 0]
    assert 0.05 < nonzero.size / rotated.size < 0.6  # corners of a cube turned at random
    assert abs(nonzero.mean()) < 0.02 and abs(nonzero.std() - 1.0) < 0.02


def _run(em_params, store, state_dir, **fit):
    from discaflow.disca import Disca

    return Disca(**em_params).fit(store, state_dir, **fit)


@pytest.fixture(scope="module")
def tiny_em(three_classes, tmp_path_factory):
    """The state directory of TINY's run on three_classes, on the command line with deterministic
    TensorFlow (shared by the homogeneity and the bundle tests): with oneDNN's multi-threaded sums the
    same run ended at K = 4 in about one run of four (measured before and after session 3's changes)."""
    state = tmp_path_factory.mktemp("tiny_em") / "state"
    args = _cli_args(three_classes, state, TINY["max_iterations"], TINY["k_candidates"])
    run = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    return state


@pytest.mark.slow
def test_tiny_em_reaches_high_homogeneity(three_classes, tiny_em):
    from sklearn.metrics import homogeneity_score

    from discaflow.disca import Disca

    em = Disca.load(tiny_em)
    with SubtomogramStore(three_classes) as s:
        truth = s.column("label")
    assert em.n_clusters_ == 3
    assert homogeneity_score(truth, em.labels_) >= 0.9
    hist = em.history_
    assert [h["iteration"] for h in hist] == list(range(len(hist)))
    # the default design: warm-up labels from the radial descriptors' clustering, not a BIC
    # choice on the network's features; BIC chooses from the first iteration after the warm-up on
    assert [h["in_warmup"] for h in hist[:2]] == [True, True] and hist[0]["k_bic"] is None
    assert all(h["k_bic"] is not None for h in hist[2:])
    # the result: the converged last iteration, else the lowest radial DDBI after the warm-up
    after = [h for h in hist if not h["in_warmup"]]
    expected = hist[-1] if hist[-1]["converged"] else min(after, key=lambda h: h["ddbi_radial"])
    assert em.best_iteration_ == expected["iteration"]


def _cli_args(store, state_dir, max_iterations=3, k_candidates=(2, 3)):
    """A deterministic tiny DISCA run (TINY's network and training) on the command line (a fresh
    process: TensorFlow can still be configured single-threaded with oneDNN off, which bit-identical
    reruns need)."""
    return [sys.executable, "-m", "discaflow.cli", "disca", str(store), "--state-dir", str(state_dir),
            "--blocks", "4", "--first-filters", "8", "--filter-step", "8", "--feature-dim", "64",
            "--max-iterations", str(max_iterations), "--learning-rate", "1e-3", "--epochs-per-iteration", "1",
            "--warmup-iterations", "2", "--k-candidates", *map(str, k_candidates), "--pca-components", "4",
            "--precision", "float32", "--deterministic"]


ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


@pytest.fixture(scope="module")
def uninterrupted(small_set, tmp_path_factory):
    """The state directory of one uninterrupted deterministic run (_cli_args' defaults) on small_set:
    the interrupted runs must end where it ends."""
    state = tmp_path_factory.mktemp("uninterrupted") / "state"
    whole = subprocess.run(_cli_args(small_set, state), env=ENV, capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    return state


@pytest.mark.slow
def test_sigterm_and_sigkill_then_resume(small_set, uninterrupted, tmp_path):
    """SIGTERM stops within seconds keeping complete iterations; after SIGKILL a rerun resumes and
    ends with the labels and DDBI history of the uninterrupted run (deterministic TensorFlow). A job
    of `--iterations N` stops the same way as SIGTERM (after a complete iteration); the workflow tests
    run DISCA in such rounds."""
    args = _cli_args(small_set, tmp_path / "s")
    env = ENV
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        target = tmp_path / "s" / ("iter_000" if sig == signal.SIGTERM else "iter_001") / "state.json"
        while not target.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert target.exists()
        t = time.time()
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        if sig == signal.SIGTERM:
            assert time.time() - t < 15
            assert rc == 143, proc.stderr.read()
    out = subprocess.run(args + ["--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list((tmp_path / "s").glob(".iter_*"))
    from discaflow.disca import Disca

    a = Disca.load(tmp_path / "s")
    b = Disca.load(uninterrupted)
    assert np.array_equal(a.labels_, b.labels_)
    assert [h["ddbi"] for h in a.history_] == [h["ddbi"] for h in b.history_]
    # the cycle test reads the labels of two iterations before from disk, so a resumed run decides alike
    from discaflow.cluster.mixtures import agreement

    two_back = [h["agreement_two_back"] for h in b.history_]
    assert two_back[:2] == [None, None] and two_back == [h["agreement_two_back"] for h in a.history_]
    assert two_back[2] == agreement(np.load(uninterrupted / "iter_000" / "labels.npy"),
                                    np.load(uninterrupted / "iter_002" / "labels.npy"))
    for name in ("labels.csv", "labels.star", "features.h5", "bundle/bundle.json"):
        assert (tmp_path / "out" / name).exists()
    # a state directory is only resumed with the parameters that wrote it
    other = subprocess.run(args + ["--seed", "5"], env=env, capture_output=True, text=True, timeout=900)
    assert other.returncode == 2 and "other DISCA parameters" in other.stderr


@pytest.mark.slow
def test_bundle_predicts_the_training_labels_and_checks_box(three_classes, tiny_em, tmp_path):
    from discaflow.bundle import load_bundle, predict_store
    from discaflow.disca import export_result

    summary = export_result(tiny_em, three_classes, tmp_path / "out")
    assert summary["bundle_agreement"] == 1.0
    bundle = load_bundle(tmp_path / "out" / "bundle")
    with SubtomogramStore(three_classes) as store:
        labels, post, feats = predict_store(bundle, store)
    assert feats.shape == (150, 64) and np.all((post > 0) & (post <= 1))
    with StoreWriter(tmp_path / "b24.h5", 24, 16.0) as w:
        w.append(np.random.default_rng(0).standard_normal((4, 24, 24, 24)))
    with SubtomogramStore(tmp_path / "b24.h5") as other, pytest.raises(InputError, match="24³ subtomograms, the model .* was trained on 16³"):
        predict_store(bundle, other)
    (tmp_path / "out" / "bundle" / "features.keras").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt or unreadable model bundle"):
        load_bundle(tmp_path / "out" / "bundle")
    with pytest.raises(InputError, match="not a DISCA model bundle"):
        load_bundle(tmp_path)


def test_candidates_clipped_for_small_sets(caplog):
    from discaflow.disca import DiscaConfig
    from discaflow.disca.rules import candidates_for

    assert candidates_for(DiscaConfig(pca_components=16), 60) == [2, 3]
    assert "clipped" in caplog.text
    assert candidates_for(DiscaConfig(design="reference"), 10_000) == [5, 10, 20]


def test_too_many_blocks_for_the_box_is_one_line(small_set, tmp_path):
    from discaflow.disca import Disca

    with pytest.raises(InputError, match="disca.blocks: a 16³ store allows at most 7 blocks, got 10"):
        Disca(**{**TINY, "blocks": 10}).fit(small_set, tmp_path / "state")
    assert not list((tmp_path / "state").glob("iter_*"))


@pytest.mark.parametrize("case", ["empty", "nan"])
def test_bad_store_for_disca(tmp_path, case):
    from discaflow.disca import Disca

    with StoreWriter(tmp_path / "s.h5", 24, 16.0, dtype="float32", normalize=False) as w:
        if case == "nan":
            x = np.zeros((4, 24, 24, 24), np.float32)
            x[1, 2, 3, 4] = np.nan
            w.append(x)
    with pytest.raises(InputError) as err:
        Disca(**TINY).fit(tmp_path / "s.h5", tmp_path / "state")
    assert "s.h5" in str(err.value) and "\n" not in str(err.value)


def test_trainer_recalibrates_batchnorm_from_a_seeded_subset(small_set):
    """batchnorm_samples > 0: the moving statistics come from that many subtomograms, chosen by the
    seed and iteration (a rerun gives the same statistics); 0 leaves them alone."""
    from discaflow import model as M
    from discaflow.disca import DiscaConfig
    from discaflow.disca.mstep import Trainer

    M.set_precision("float32")

    def moving_mean(samples, iteration):
        c = DiscaConfig(**{**TINY, "batchnorm_samples": samples})
        features = M.build_feature_model(BOX, c.blocks, c.first_filters, c.filter_step, c.feature_dim, seed=0)
        with SubtomogramStore(small_set) as store:
            Trainer(store, c).recalibrate_batchnorm(features, iteration)
        return np.asarray(features.get_layer("bn1").moving_mean)

    assert np.all(moving_mean(0, 1) == 0.0)  # untouched: Keras initialises the moving mean to 0
    a, b, c = moving_mean(40, 1), moving_mean(40, 1), moving_mean(40, 2)
    assert np.abs(a).max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(a - c).max() > 1e-3  # another iteration draws another subset


def test_reference_design_runs_and_its_bundle_reproduces_every_label(small_set, tmp_path):
    """design reference (the published E-step: candidates 5, 10, 20 by BIC, no warm-up, no split or
    merge tests, the lowest network DDBI): every label is the mixture's own prediction, so the exported
    bundle reproduces all of them."""
    from discaflow.disca import PUBLISHED, export_result

    em = _run({**TINY, **PUBLISHED, "max_iterations": 2, "rotation_copies": 0}, small_set, tmp_path / "s")
    assert [h["candidates"] for h in em.history_] == [[5, 10]] * len(em.history_)  # 60 subtomograms: 20 clipped
    assert not any(h["in_warmup"] or h["splits"] or h["merges"] or h["ddbi_radial"] for h in em.history_)
    assert export_result(tmp_path / "s", small_set, tmp_path / "out")["bundle_agreement"] == 1.0


def test_auto_precision_uses_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    import tensorflow as tf

    from discaflow import cpu
    from discaflow import model as M
    from discaflow.disca.mstep import resolve_precision

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # as on a machine without GPU

    amd_avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2\n"
    amd_zen4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
    graviton3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    assert not M.cpu_has_native_bfloat16(amd_avx2)
    assert M.cpu_has_native_bfloat16(amd_zen4) and M.cpu_has_native_bfloat16(graviton3)
    assert not M.cpu_has_native_bfloat16("")  # unreadable /proc/cpuinfo: float32
    for cpuinfo, expected in ((amd_avx2, "float32"), (amd_zen4, "mixed_bfloat16")):
        monkeypatch.setattr(cpu, "_proc_cpuinfo", lambda c=cpuinfo: c)
        assert resolve_precision("auto") == expected
        assert resolve_precision("auto", deterministic=True) == "float32"
        assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"  # an explicit choice is kept


def test_radial_warm_up_and_split_run_and_export(small_set, tmp_path, monkeypatch):
    """design discaflow: the warm-up iteration's labels are radial.cluster_radial's clustering of the
    radial descriptors (no BIC on the network's features); after it each cluster is tested on the
    radial descriptors (records marked "radial") and pairs of clusters for a merge (records under
    "merges"); the run completes (resumed under another n_jobs) and its bundle exports. Fitted to a
    sample of the store (fit_sample), every subtomogram labelled. (The criteria
    themselves: tests/test_cluster.py; the E-step alone: tests/test_disca_core.py.)"""
    from discaflow.disca import export_result
    from discaflow.cluster.radial import cluster_radial, store_radial_features

    from discaflow.disca import estep

    monkeypatch.setattr(estep, "RADIAL_SPLIT_DIMS", 4)  # clusters of 20 are too small to test in 24 dimensions
    # fit_sample 55 of 60: the warm-up clustering and the E-step's tests fitted to a sample, all assigned
    # (at 45 the sample's clusters of 15 are too few for 16 PCA dimensions: K 2)
    params = {**TINY, "max_iterations": 2, "warmup_iterations": 1, "epochs_per_iteration": 1, "rotation_copies": 0,
              "fit_sample": 55}
    # the warm-up on one process, the rest resumed on two: n_jobs is not part of the run's identity
    _run({**params, "n_jobs": 1}, small_set, tmp_path / "s", max_new_iterations=1)
    em = _run({**params, "n_jobs": 2}, small_set, tmp_path / "s")
    with SubtomogramStore(small_set) as s:
        expected = cluster_radial(store_radial_features(s), TINY["k_candidates"], max_fit=55)
    warm = em.history_[0]
    assert warm["in_warmup"] and warm["bic"] == {} and warm["k"] == expected.max() + 1 == 3
    assert np.array_equal(np.load(tmp_path / "s" / "iter_000" / "labels.npy"), expected)
    assert not em.history_[1]["in_warmup"] and em.history_[1]["bic"]  # BIC on the network's features after it
    radial = [[r for r in h["splits"] if r.get("features") == "radial"] for h in em.history_]
    assert radial[0] == [] and all(radial[1:]), radial  # none in the warm-up, every cluster tested after
    assert sum(r["size"] for r in radial[1]) == 55 and len(np.load(tmp_path / "s" / "iter_001" / "labels.npy")) == 60
    assert all(r["cluster"] < h["k"] + len(h["merges"]) for rs, h in zip(radial, em.history_) for r in rs)
    assert em.history_[0]["merges"] == [] and all(len(r["clusters"]) == 2 for h in em.history_ for r in h["merges"])
    # both DDBIs recorded; the result the lowest radial one after the warm-up (not converged in 2 iterations)
    assert all(isinstance(h["ddbi_radial"], float) and isinstance(h["ddbi"], float) for h in em.history_)
    assert em.best_iteration_ == 1 and em.ddbi_ == em.history_[1]["ddbi_radial"]
    summary = export_result(tmp_path / "s", small_set, tmp_path / "out")
    assert summary["k"] == em.n_clusters_ and (tmp_path / "out" / "labels.star").exists()


def test_bounded_mstep_trains_on_at_most_train_per_cluster_of_each_cluster():
    """train_per_cluster M: each epoch trains on every member of a cluster of at most M and on M drawn
    anew (seeded) from a larger one; where no cluster exceeds M the epoch is the full one, draw for draw."""
    from discaflow.disca import DiscaConfig
    from discaflow.disca.mstep import Trainer

    labels = np.repeat([0, 1, 2], [50, 8, 30])
    trainer = Trainer(store=range(len(labels)), config=DiscaConfig(train_per_cluster=20, rotation_copies=1, batch_size=16))
    batches, _ = trainer.epoch_batches(epoch_seed=1, labels=labels)
    pairs = np.concatenate(batches)
    chosen = np.unique(pairs[:, 0])
    assert np.bincount(labels[chosen]).tolist() == [20, 8, 20]
    assert sorted(np.bincount(pairs[:, 1]).tolist()) == [48, 48]  # each chosen one: original + one rotated copy
    again, _ = trainer.epoch_batches(epoch_seed=1, labels=labels)
    other, _ = trainer.epoch_batches(epoch_seed=2, labels=labels)
    assert np.array_equal(np.concatenate(again), pairs)  # seeded
    assert not np.array_equal(np.unique(np.concatenate(other)[:, 0]), chosen)  # drawn anew each epoch
    roomy = Trainer(store=range(len(labels)), config=DiscaConfig(train_per_cluster=50, rotation_copies=1, batch_size=16))
    full = Trainer(store=range(len(labels)), config=DiscaConfig(train_per_cluster=0, rotation_copies=1, batch_size=16))
    for a, b in zip(roomy.epoch_batches(3, labels)[0], full.epoch_batches(3, None)[0], strict=True):
        assert np.array_equal(a, b)
