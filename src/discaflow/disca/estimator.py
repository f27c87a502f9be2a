"""DISCA as a scikit-learn-style estimator over a subtomogram store, checkpointed per iteration.

Iteration i: features of every subtomogram (dropout off) → PCA → E-step (estep.e_step: labels and K)
→ DDBI, agreement with the previous labels → stop (rules.labels_converged) or M-step (mstep.Trainer: a
new softmax head when K changed, then ``epochs_per_iteration`` epochs on the smoothed labels with
rotated copies, BatchNorm recalibrated). Every random draw of iteration i is seeded by (seed, i), so
a run killed at any point and resumed reaches the labels of one that never stopped.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import numpy as np

from discaflow.disca import checkpoint as ck
from discaflow.disca import rules
from discaflow.disca.config import DiscaConfig
from discaflow.disca.estep import REG_COVAR, RADIAL_SPLIT_DIMS, e_step
from discaflow.errors import InputError
from discaflow.io.atomic import exclusive_lock

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """SIGTERM/SIGINT asked the run to stop; the last complete iteration is kept."""


class _StopFlag:
    """Turns SIGTERM/SIGINT into :class:`Interrupted` at the next ``check()`` (between batches)."""

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


class Disca:
    """DISCA over a subtomogram store (keyword-only parameters: :class:`DiscaConfig`'s).

    ``fit(store, state_dir)`` runs or resumes the iterations. Fitted attributes: ``labels_`` (0..K-1),
    ``posterior_``, ``n_clusters_``, ``best_iteration_``, ``ddbi_``, ``history_`` (one
    checkpoint.IterationState dict per iteration), ``converged_``; set once the run has finished.
    """

    def __init__(self, *, config: DiscaConfig | None = None, **params):
        self.config = config.replace(**params) if config is not None else DiscaConfig(**params)

    def fit(self, store_path, state_dir, *, max_new_iterations: int | None = None, init_from=None,
            restart_on_change: bool = False) -> "Disca":
        """Run or resume the iterations; at most ``max_new_iterations`` now. The state directory belongs
        to one run (checkpoint.open_state_dir); ``restart_on_change`` empties another run's."""
        from discaflow.io.store import SubtomogramStore

        c = self.config
        with SubtomogramStore(store_path) as store:  # everything checked before the state directory is touched
            self._check_input(store, init_from)
            identity = ck.run_identity(c.identity(), store.fingerprint(), init_from)
        with exclusive_lock(state_dir, "--state-dir"):  # one run per state directory
            state_dir = ck.open_state_dir(state_dir, identity, restart_on_change)
            done = ck.completed_iterations(state_dir)
            if not (done and ck.read_state(state_dir, done[-1])["finished"]):
                with SubtomogramStore(store_path) as store, _StopFlag() as stop:
                    _Run(self.config, store, state_dir, stop).run(done, init_from, max_new_iterations)
                done = ck.completed_iterations(state_dir)
        if done and ck.read_state(state_dir, done[-1])["finished"]:
            return self._load(state_dir)
        self.converged_ = False
        return self

    def _check_input(self, store, init_from) -> None:
        c = self.config
        n = len(store)
        if n == 0:
            raise InputError(f"{store.path}: the store holds no subtomograms; check picking")
        smallest, p = rules.smallest_candidate(c), c.pca_components
        if n < smallest * (p + 1):  # a full-covariance Gaussian in p dimensions needs more than p members
            raise InputError(f"{store.path}: {n} subtomogram(s) are too few for K = {smallest} clusters in "
                             f"disca.pca_components {p} dimensions (at least {smallest * (p + 1)}); pick more particles "
                             "or lower disca.pca_components")
        store.read(0, min(n, 256), finite=True)  # fail before building the network
        if init_from is not None:
            from discaflow.bundle import check_compatible, read_bundle_info

            check_compatible(read_bundle_info(init_from), store, init_from)
        elif store.box_vox - 2 * c.blocks < 1:  # each 'valid' 3³ block takes 2 voxels
            raise InputError(f"disca.blocks: a {store.box_vox}³ store allows at most {(store.box_vox - 1) // 2} blocks, "
                             f"got {c.blocks}; lower disca.blocks or extract a larger box")

    @classmethod
    def load(cls, state_dir) -> "Disca":
        """The fitted estimator of a finished (or stopped) run's state directory."""
        est = cls.__new__(cls)
        try:
            est.config = DiscaConfig(**ck.read_identity(state_dir)["params"])
        except (TypeError, InputError):  # a state directory of an older discaflow
            est.config = None
        return est._load(Path(state_dir))

    def _load(self, state_dir: Path) -> "Disca":
        history = ck.history(state_dir)
        best, key = rules.result_iteration(history)
        self.history_ = history
        self.best_iteration_ = best["iteration"]
        self.ddbi_ = best[key]
        self.labels_ = ck.read_labels(state_dir, self.best_iteration_)
        self.posterior_ = np.load(ck.iteration_dir(state_dir, self.best_iteration_) / "posterior.npy")
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.converged_ = bool(history[-1]["converged"])
        self.state_dir_ = state_dir
        return self


class _Run:
    """One process's share of a run: the network in memory from one iteration to the next."""

    def __init__(self, config: DiscaConfig, store, state_dir: Path, stop: _StopFlag):
        from discaflow.disca.mstep import Trainer, configure_tensorflow, device_strategy

        configure_tensorflow(config.deterministic)
        self.config, self.store, self.state_dir, self.stop = config, store, state_dir, stop
        self.strategy = device_strategy()
        self.devices = self.strategy.num_replicas_in_sync if self.strategy else 1
        if self.devices > 1:
            log.info("training on %d devices (data-parallel, batch statistics synchronised)", self.devices)
        self.trainer = Trainer(store, config, stop.check, self.devices)
        self._radial = self._radial_pca = self._warmup_labels = None

    def radial(self) -> np.ndarray:
        """Standardised radial descriptors of the store (once per process)."""
        if self._radial is None:
            from discaflow.cluster.radial import store_radial_features

            self._radial = store_radial_features(self.store)
        return self._radial

    def radial_pca(self) -> np.ndarray:
        """The radial descriptors in a PCA to ``pca_components`` dimensions: the space of the radial DDBI."""
        if self._radial_pca is None:
            from discaflow.cluster.mixtures import fit_pca

            f = np.asarray(self.radial(), np.float64)
            self._radial_pca = fit_pca(f, min(self.config.pca_components, f.shape[1]), self.config.seed).transform(f)
        return self._radial_pca

    def run(self, done: list[int], init_from, max_new_iterations: int | None) -> None:
        if self.strategy is None:
            return self._run(done, init_from, max_new_iterations)
        with self.strategy.scope():  # every network built or loaded here is mirrored on the devices
            return self._run(done, init_from, max_new_iterations)

    def _run(self, done: list[int], init_from, max_new_iterations: int | None) -> None:
        import keras

        from discaflow import model as M
        from discaflow.disca.mstep import resolve_precision

        c = self.config
        M.set_precision(resolve_precision(c.precision, c.deterministic))
        start = done[-1] + 1 if done else 0
        classifier = None
        if start == 0:
            keras.utils.set_random_seed(c.seed)
            classifier = self.trainer.initial_classifier(self.store.box_vox, self._init_network(init_from))
            self.trainer.recalibrate_batchnorm(classifier.get_layer("yopo_features"), 0)
            (self.state_dir / "init").mkdir(exist_ok=True)
            classifier.save(self.state_dir / "init" / "model.keras")
        previous = ck.read_labels(self.state_dir, start - 1) if start else None
        stop_at = c.max_iterations if max_new_iterations is None else min(c.max_iterations, start + max_new_iterations)
        t_start = time.perf_counter()
        for i in range(start, stop_at):
            if classifier is None:  # resumed: the network the last complete iteration saved
                classifier = M.load_model(ck.model_dir(self.state_dir, i) / "model.keras")
            # what a reload would reset, reset here, so that a kept network continues as a reloaded one
            # (bit-identical resume): the input dropout's random stream and the global seeds
            M.reset_random_state(classifier)
            keras.utils.set_random_seed(c.seed * 1000 + i)
            state, classifier, previous = self.iteration(i, classifier, previous)
            left = c.max_iterations - i - 1
            eta = (time.perf_counter() - t_start) / (i - start + 1) * left
            log.info("iteration %d: K=%d DDBI=%.4f agreement=%s (%.0f s)%s", i, state.k, state.ddbi,
                     "-" if state.agreement is None else f"{state.agreement:.4f}", state.seconds["total"],
                     f" converged: the labels of iteration {i - 2} again" if state.cycle else " converged" if state.converged
                     else f"; at most {left} more, ETA {eta / 60:.0f} min" if left else "")
            if state.finished:
                break

    def _init_network(self, init_from):
        if init_from is None:
            return None
        from discaflow.bundle import load_bundle

        return load_bundle(init_from).feature_model  # checked against the store in Disca._check_input

    def iteration(self, i: int, classifier, previous):
        from discaflow import model as M
        from discaflow.cluster.mixtures import agreement, ddbi, fit_pca, fit_sample

        from discaflow.progress import peak_rss_mb

        c, trainer = self.config, self.trainer
        t0 = time.perf_counter()
        peak_rss_mb(reset=True)
        feature_model = classifier.get_layer("yopo_features")
        features = trainer.features(feature_model, f"iteration {i}: features")
        t_features = time.perf_counter() - t0
        rss = {"features": peak_rss_mb(reset=True)}
        pca = fit_pca(features, c.pca_components, c.seed)
        z = pca.transform(features.astype(np.float64))
        fit_on = fit_sample(len(z), c.fit_sample, c.seed)  # the same sample every iteration
        cands = rules.candidates_for(c, len(z) if fit_on is None else len(fit_on))
        warmup = rules.in_warmup(c, i)
        if warmup and self._warmup_labels is None:  # the classical clustering, once per process
            from discaflow.cluster.radial import cluster_radial

            self._warmup_labels = cluster_radial(self.radial(), cands, split_dims=RADIAL_SPLIT_DIMS, seed=c.seed,
                                                 reg_covar=REG_COVAR, n_jobs=c.n_jobs, max_fit=c.fit_sample)
            log.info("radial warm-up labels: K=%d, sizes %s", self._warmup_labels.max() + 1,
                     np.bincount(self._warmup_labels).tolist())
        warmup_labels = self._warmup_labels if warmup else None
        radial = self.radial() if c.design == "discaflow" and not warmup else None
        e = e_step(z, candidates=cands, design=c.design, warmup=warmup, previous_labels=previous,
                   warmup_labels=warmup_labels, radial=radial, seed=c.seed + i, n_jobs=c.n_jobs, fit_on=fit_on)
        labels = e.labels
        agree = agree_two_back = None
        if previous is not None:
            agree = agreement(previous, labels)
            if i >= 2:  # from disk, so that a resumed run decides as one that never stopped
                agree_two_back = agreement(ck.read_labels(self.state_dir, i - 2), labels)
        score = ddbi(z, labels, REG_COVAR)
        score_radial = ddbi(self.radial_pca(), labels, REG_COVAR) if rules.radial_ddbi(c) else None
        t_gmm = time.perf_counter() - t0 - t_features
        rss["mixtures"] = peak_rss_mb(reset=True)
        converged, cycle = rules.labels_converged(agree, agree_two_back, c, warmup)
        finished = converged or i + 1 >= c.max_iterations
        lr, alpha = rules.learning_rate(c, i), rules.label_smoothing(i)
        loss = None
        if not finished:
            targets = rules.smoothed_targets(labels, e.k, alpha)
            if e.k != classifier.output_shape[-1] or previous is None:
                head = M.build_head(c.feature_dim, e.k, seed=c.seed + i)
                trainer.train_head(head, features, targets, i)
                classifier = trainer.compile(M.build_classifier(feature_model, head))
            from discaflow.progress import Progress

            progress = Progress(f"iteration {i}: training {c.epochs_per_iteration} epoch(s)",
                                c.epochs_per_iteration * len(trainer.epoch_sample(labels)) * (c.rotation_copies + 1))
            for epoch in range(c.epochs_per_iteration):
                loss = trainer.train_epoch(classifier, targets, lr, i * 1000 + epoch, progress, labels)
            progress.close()
            trainer.recalibrate_batchnorm(classifier.get_layer("yopo_features"), i + 1)
            rss["training"] = peak_rss_mb()
        state = ck.IterationState(
            iteration=i, k=e.k, ddbi=score, ddbi_radial=score_radial, agreement=agree, agreement_two_back=agree_two_back,
            converged=converged, cycle=cycle, finished=finished, candidates=cands, bic=e.bic,
            warm_start_kept=e.warm_start_kept, k_bic=e.k_bic, splits=e.splits, merges=e.merges, in_warmup=warmup,
            result_converged=rules.result_converged(c), learning_rate=lr, label_smoothing=alpha, loss=loss,
            cluster_sizes=np.bincount(labels).tolist(),
            seconds={"features": t_features, "mixtures": t_gmm, "total": time.perf_counter() - t0},
            rss_peak_mb={k: v for k, v in rss.items() if v is not None}, devices=self.devices)
        ck.write_iteration(self.state_dir, state, labels=labels, posterior=e.posterior, z=z, pca=pca, mixture=e.mixture,
                           save_model=None if finished else (lambda d: classifier.save(d / "model.keras")))
        return state, classifier, labels


def export_result(state_dir, store_path, out_dir) -> dict:
    """Write the result iteration's labels (``labels.csv``, ``labels.star``: particle index, tomogram,
    unbinned x/y/z, class, posterior), the features of the bundle's network (``features.h5``), the
    history (``history.json``) and the model bundle (``bundle/``) to ``out_dir``."""
    import h5py

    from discaflow.bundle import labels_table, load_bundle, predict_store, write_bundle
    from discaflow.io.atomic import atomic_path
    from discaflow.io.star import write_star
    from discaflow.io.store import SubtomogramStore
    from discaflow.model import load_model

    state_dir, out_dir = Path(state_dir), Path(out_dir)
    est = Disca.load(state_dir)
    b = est.best_iteration_
    classifier = load_model(ck.model_dir(state_dir, b) / "model.keras")
    with np.load(ck.iteration_dir(state_dir, b) / "mixture.npz") as m:
        mixture = {k: m[k] for k in m.files}
    out_dir.mkdir(parents=True, exist_ok=True)
    with SubtomogramStore(store_path) as store:
        info = {"k": est.n_clusters_, "best_iteration": b, "ddbi": est.ddbi_, "store": Path(store_path).name,
                "params": ck.read_identity(state_dir)["params"]}
        write_bundle(out_dir / "bundle", classifier.get_layer("yopo_features"), mixture, store.box_vox, store.voxel_size_A, info)
        bundle = load_bundle(out_dir / "bundle")
        labels, posterior, feats = predict_store(bundle, store)
        table = labels_table(store, est.labels_, est.posterior_)
    agree = float(np.mean(labels == est.labels_))  # the bundle reproduces the result (same network, PCA, mixture)
    if agree < 0.99:
        log.warning("the exported bundle reproduces %.1f %% of the result iteration's labels", 100 * agree)
    with atomic_path(out_dir / "labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_star(out_dir / "labels.star", table)
    with atomic_path(out_dir / "features.h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=feats, compression="gzip")
            f.create_dataset("labels", data=est.labels_)
    with atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(ck.dumps(est.history_))
    return {"k": est.n_clusters_, "best_iteration": b, "ddbi": est.ddbi_, "bundle_agreement": agree}
