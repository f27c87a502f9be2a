"""DISCA's pure parts, without TensorFlow: the E-step on synthetic mixtures, the decision rules, the
checkpoint directory, the config."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import homogeneity_score

from discaflow.disca import checkpoint as ck
from discaflow.disca.config import PUBLISHED, DiscaConfig
from discaflow.disca.estep import e_step
from discaflow.disca.rules import labels_converged, result_iteration
from discaflow.errors import InputError


def test_the_core_does_not_import_tensorflow():
    code = ("import sys, discaflow.disca.estep, discaflow.disca.checkpoint, discaflow.disca.rules, discaflow.cli; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _blobs(centres, n, dims, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, scale, (n, dims)) for c in centres])
    return x, np.repeat(np.arange(len(centres)), n)


def test_bic_finds_k_and_the_mixture_reproduces_the_labels():
    z, truth = _blobs([0, 8, 16], 60, 4, 0)
    e = e_step(z, candidates=[2, 3, 4, 5, 6], design="reference", warmup=False, seed=0)
    assert e.k == e.k_bic == 3 and set(e.bic) == {"2", "3", "4", "5", "6"}
    assert homogeneity_score(truth, e.labels) == 1.0 and e.posterior.min() > 0.99
    assert np.array_equal(e.mixture.predict(z), e.labels)  # components saved in label order
    assert e.splits == [] and e.merges == [] and e.warm_start_kept is False
    again = e_step(z, candidates=[2, 3, 4, 5, 6], design="reference", warmup=False, seed=0)
    assert np.array_equal(again.labels, e.labels) and again.bic == e.bic  # seeded


def test_labels_are_numbered_as_the_previous_iteration_and_warm_started_from_them():
    z, truth = _blobs([0, 8, 16], 60, 4, 1)
    previous = (truth + 1) % 3  # the same partition under other numbers
    e = e_step(z, candidates=[2, 3, 4], design="reference", warmup=False, previous_labels=previous, seed=0)
    assert np.array_equal(e.labels, previous) and e.warm_start_kept is not None
    assert np.array_equal(e.mixture.predict(z), e.labels)


def test_the_warm_up_keeps_its_labels():
    z, truth = _blobs([0, 8], 60, 4, 2)
    given = np.repeat([0, 1, 2], 40)  # not what BIC would choose: kept as they are
    e = e_step(z, candidates=[2, 3], design="discaflow", warmup=True, warmup_labels=given, seed=0)
    assert np.array_equal(e.labels, given) and e.k_bic is None and e.bic == {} and e.splits == []


def test_the_radial_split_separates_what_the_network_features_merge():
    """Two classes one cluster in the network's space, apart in the radial descriptors: split, K 3."""
    z, truth = _blobs([0, 10, 10], 100, 4, 3)  # classes 1 and 2 coincide in z
    radial, _ = _blobs([0, 8, 16], 100, 6, 4)  # all three apart
    ref = e_step(z, candidates=range(2, 7), design="reference", warmup=False, seed=0)
    assert ref.k == 2
    e = e_step(z, candidates=range(2, 7), design="discaflow", warmup=False, radial=radial, seed=0)
    assert e.k_bic == 2 and e.k == 3 and homogeneity_score(truth, e.labels) == 1.0
    assert any(r["split"] and r["features"] == "radial" for r in e.splits) and e.merges == []
    assert np.array_equal(e.mixture.predict(z[truth == 0]), e.labels[truth == 0])


def test_the_radial_merge_joins_clusters_that_differ_only_in_the_network_space():
    """One class in two clusters of the network's space (as by orientation) and alike in the radial
    descriptors: merged, K 2."""
    z, parts = _blobs([0, 10, 20], 100, 4, 5)
    truth = np.where(parts == 2, 1, 0)  # parts 0 and 1 are one class
    radial = np.where(truth[:, None] == 1, 8.0, 0.0) + np.random.default_rng(6).normal(0, 1, (300, 6))
    e = e_step(z, candidates=range(2, 7), design="discaflow", warmup=False, radial=radial, seed=0)
    assert e.k_bic == 3 and e.k == 2 and len(e.merges) == 1
    assert homogeneity_score(truth, e.labels) == 1.0 and homogeneity_score(e.labels, truth) == 1.0


def test_an_e_step_fitted_to_a_sample_labels_every_subtomogram():
    """``fit_on``: mixtures and split/merge tests on a sample, all assigned. Without a split the fitted
    mixture's labels; with one (two classes one cluster in z, apart in the radial descriptors) one
    Gaussian per cluster in z and radial together: K 3, every subtomogram right."""
    from discaflow.cluster.mixtures import fit_sample

    z, truth = _blobs([0, 8, 16], 400, 4, 7)
    sample = fit_sample(len(z), 200, seed=0)
    full = e_step(z, candidates=range(2, 7), design="reference", warmup=False, seed=0)
    e = e_step(z, candidates=range(2, 7), design="reference", warmup=False, seed=0, fit_on=sample)
    assert e.k == full.k == 3 and len(e.labels) == len(z) and homogeneity_score(truth, e.labels) == 1.0
    assert np.array_equal(e.mixture.predict(z), e.labels) and e.posterior.shape == (len(z),)
    again = e_step(z, candidates=range(2, 7), design="reference", warmup=False, seed=0, fit_on=sample,
                   previous_labels=(truth + 1) % 3)
    assert np.array_equal(again.labels, (truth + 1) % 3)  # numbered as the previous iteration, all N

    z, truth = _blobs([0, 10, 10], 400, 4, 3)
    radial, _ = _blobs([0, 8, 16], 400, 6, 4)
    sample = fit_sample(len(z), 300, seed=0)
    e = e_step(z, candidates=range(2, 7), design="discaflow", warmup=False, radial=radial, seed=0, fit_on=sample)
    assert e.k_bic == 2 and e.k == 3 and homogeneity_score(truth, e.labels) == 1.0
    assert all(r["size"] <= 300 for r in e.splits)  # the tests saw the sample only


def test_convergence_and_the_result_iteration():
    c, ref = DiscaConfig(), DiscaConfig(**PUBLISHED)
    assert labels_converged(None, None, c, False) == (False, False)  # the first iteration
    assert labels_converged(1.0, 1.0, c, True) == (False, False)  # warm-up labels never converge
    assert labels_converged(0.9995, None, c, False) == (True, False)
    assert labels_converged(0.999, None, c, False) == (False, False)  # more than agreement_stop
    assert labels_converged(0.996, 1.0, c, False) == (True, True)  # A, B, A: the loop alternates
    assert labels_converged(0.996, 1.0, ref, False) == (False, False)  # the paper: the previous labels only
    assert labels_converged(0.996, 0.998, DiscaConfig(agreement_stop=0.99), False) == (True, False)
    h = [{"iteration": 0, "in_warmup": True, "ddbi": 0.1, "ddbi_radial": 0.1},
         {"iteration": 1, "in_warmup": False, "ddbi": 0.5, "ddbi_radial": 2.0},
         {"iteration": 2, "in_warmup": False, "ddbi": 0.9, "ddbi_radial": 0.3},
         {"iteration": 3, "in_warmup": False, "ddbi": 0.9, "ddbi_radial": 0.3}]
    assert result_iteration(h)[0]["iteration"] == 2 and result_iteration(h)[1] == "ddbi_radial"  # ties: earlier
    network = [{**s, "ddbi_radial": None} for s in h]
    assert result_iteration(network)[0]["iteration"] == 1 and result_iteration(network)[1] == "ddbi"
    conv = h + [{"iteration": 4, "in_warmup": False, "ddbi": 0.95, "ddbi_radial": 0.4, "converged": True,
                 "result_converged": True}]
    assert result_iteration(conv)[0]["iteration"] == 4
    assert result_iteration([*conv[:-1], {**conv[-1], "result_converged": False}])[0]["iteration"] == 2


def _state(i, finished=False):
    return ck.IterationState(iteration=i, k=2, ddbi=0.5, ddbi_radial=None, agreement=None, agreement_two_back=None,
                             converged=False, cycle=False, finished=finished, candidates=[2, 3], bic={"2": 1.0},
                             warm_start_kept=None, k_bic=2, splits=[], merges=[], in_warmup=False, result_converged=True,
                             learning_rate=1e-3, label_smoothing=0.2, loss=None, cluster_sizes=[5, 5])


def _write(state_dir, i, save_model=None):
    z, truth = _blobs([0, 8], 5, 2, i)
    e = e_step(z, candidates=[2], design="reference", warmup=False, seed=0)
    from discaflow.cluster.mixtures import fit_pca

    ck.write_iteration(state_dir, _state(i), labels=e.labels, posterior=e.posterior, z=z, pca=fit_pca(z, 2),
                       mixture=e.mixture, save_model=save_model)


def test_the_state_directory_belongs_to_one_run(tmp_path):
    store = "0" * 64  # SubtomogramStore.fingerprint()
    ident = ck.run_identity(DiscaConfig().identity(), store)
    assert "n_jobs" not in ident["params"]  # result-neutral: a run may resume under another value
    d = ck.open_state_dir(tmp_path / "state", ident)
    _write(d, 0)
    assert ck.open_state_dir(d, ident) == d and ck.completed_iterations(d) == [0]  # reopened as it was
    other = ck.run_identity(DiscaConfig(seed=1).identity(), store)
    with pytest.raises(InputError, match="other DISCA parameters") as err:
        ck.open_state_dir(d, other)
    assert str(d) in str(err.value) and "\n" not in str(err.value)
    assert ck.completed_iterations(d) == [0]  # nothing deleted
    ck.open_state_dir(d, other, restart_on_change=True)
    assert ck.completed_iterations(d) == [] and json.loads((d / "params.json").read_text()) == other


def test_iterations_are_written_whole_or_not_at_all(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    _write(d, 0)
    state = ck.read_state(d, 0)
    assert ck.IterationState.from_dict(state) == _state(0) and ck.history(d) == [state]
    assert ck.read_labels(d, 0).dtype == np.int64 and (ck.iteration_dir(d, 0) / "mixture.npz").exists()

    def killed(tmp):
        (tmp / "model.keras").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write(d, 1, save_model=killed)
    assert ck.completed_iterations(d) == [0] and not list(d.glob(".iter_*"))
    (d / ".iter_001.partial").mkdir()  # what a SIGKILL leaves
    (d / "iter_002").mkdir()  # a directory without state.json is not an iteration
    assert ck.completed_iterations(d) == [0]
    ck.remove_partial(d)
    assert not list(d.glob(".iter_*"))
    assert ck.model_dir(d, 0) == d / "init" and ck.model_dir(d, 3) == ck.iteration_dir(d, 2)


def test_config_validates_once_and_names_the_key():
    assert DiscaConfig(k_candidates=[5, 2, 5]).k_candidates == [2, 5]
    for bad, key in (({"design": "bic"}, "design"), ({"k_candidates": [0]}, "k_candidates"),
                     ({"n_jobs": 0}, "n_jobs"), ({"agreement_stop": 1.5}, "agreement_stop")):
        with pytest.raises(InputError, match=f"disca.{key}"):
            DiscaConfig(**bad)
    with pytest.raises(TypeError):
        DiscaConfig(k_strategy="radial")  # removed keys are not accepted silently
    assert DiscaConfig(**PUBLISHED).design == "reference"
    assert DiscaConfig(n_jobs=4).identity() == DiscaConfig().identity()


def test_progress_lines_give_the_rate_and_an_eta(caplog):
    import logging

    from discaflow.progress import Progress

    p = Progress("iteration 3: training", 100, interval_s=0.0)
    with caplog.at_level(logging.INFO, logger="discaflow.progress"):
        p.advance(25)
        p.advance(25)
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[-1].startswith("iteration 3: training: 50/100 subtomograms (")
    assert "/s), ETA " in lines[-1] and lines[-1].endswith(" min")
