"""DISCA's state directory: the run's identity, one complete directory per iteration, resume.

``<state>/params.json`` holds the run identity (the parameters that decide the result, the store's
name, size and modification time, the initial bundle); ``<state>/init/model.keras`` the initial
network; ``<state>/iter_NNN/`` each iteration (``state.json``, ``labels.npy``, ``posterior.npy``,
``z.npy``, ``mixture.npz`` and, unless it was the last, ``model.keras`` after its M-step), written
under a temporary name and renamed when complete, so a killed run resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from discaflow.errors import InputError
from discaflow.io.atomic import atomic_dir

log = logging.getLogger(__name__)


@dataclass
class IterationState:
    """One iteration's record (``state.json``). DDBIs are in the E-step's PCA space (``ddbi``) and the
    radial descriptors' (``ddbi_radial``, None where not measured); agreements are fractions of labels
    equal to the previous iteration's and to those of two before; seconds per step."""

    iteration: int
    k: int
    ddbi: float
    ddbi_radial: float | None
    agreement: float | None
    agreement_two_back: float | None
    converged: bool
    cycle: bool
    finished: bool
    candidates: list
    bic: dict
    warm_start_kept: bool | None
    k_bic: int | None
    splits: list
    merges: list
    in_warmup: bool
    result_converged: bool
    learning_rate: float
    label_smoothing: float
    loss: float | None
    cluster_sizes: list
    seconds: dict = field(default_factory=dict)
    rss_peak_mb: dict = field(default_factory=dict)  # per step, where the OS tells
    devices: int = 1  # replicas the M-step trained on

    @classmethod
    def from_dict(cls, d: dict) -> "IterationState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def dumps(obj) -> str:
    """JSON of records holding numpy scalars and arrays."""
    return json.dumps(obj, indent=2, default=_json_default)


def iteration_dir(state_dir, i: int) -> Path:
    return Path(state_dir) / f"iter_{i:03d}"


def model_dir(state_dir, i: int) -> Path:
    """Where the network that iteration ``i``'s E-step used is saved (the M-step of i - 1, or init)."""
    return iteration_dir(state_dir, i - 1) if i > 0 else Path(state_dir) / "init"


def completed_iterations(state_dir) -> list[int]:
    """Iterations whose directory is complete (has state.json), in order."""
    return [int(p.name[5:]) for p in sorted(Path(state_dir).glob("iter_[0-9][0-9][0-9]")) if (p / "state.json").exists()]


def read_state(state_dir, i: int) -> dict:
    return json.loads((iteration_dir(state_dir, i) / "state.json").read_text())


def history(state_dir) -> list[dict]:
    return [read_state(state_dir, i) for i in completed_iterations(state_dir)]


def read_labels(state_dir, i: int) -> np.ndarray:
    return np.load(iteration_dir(state_dir, i) / "labels.npy")


def write_iteration(state_dir, state: IterationState, *, labels, posterior, z, pca, mixture, save_model=None) -> None:
    """Write iteration ``state.iteration`` atomically; ``save_model(dir)`` saves the network there."""
    with atomic_dir(iteration_dir(state_dir, state.iteration)) as tmp:
        if save_model is not None:
            save_model(tmp)
        np.savez(tmp / "mixture.npz", pca_mean=pca.mean_, pca_components=pca.components_, weights=mixture.weights_,
                 means=mixture.means_, covariances=mixture.covariances_)
        np.save(tmp / "labels.npy", np.asarray(labels, np.int64))
        np.save(tmp / "posterior.npy", np.asarray(posterior, np.float32))
        np.save(tmp / "z.npy", np.asarray(z, np.float32))
        (tmp / "state.json").write_text(dumps(asdict(state)))


def remove_partial(state_dir) -> None:
    """Remove what a killed run left half-written."""
    for p in Path(state_dir).glob(".iter_*.partial"):
        shutil.rmtree(p, ignore_errors=True)


def run_identity(params: dict, store_fingerprint: str, init_from=None) -> dict:
    """What makes a run: its parameters, the store's content (SubtomogramStore.fingerprint, so a copy
    or a touched store is the same run) and the bundle it started from."""
    return {"params": json.loads(dumps(params)), "store": store_fingerprint,
            "init_from": str(init_from) if init_from else None}


def open_state_dir(state_dir, identity: dict, restart_on_change: bool = False) -> Path:
    """Create or reopen a state directory for a run of ``identity``. Another run's directory is an
    InputError, or with ``restart_on_change`` emptied (the workflow's first round after a config edit)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    remove_partial(state_dir)
    params_file = state_dir / "params.json"
    if params_file.exists() and json.loads(params_file.read_text()) != identity:
        if not restart_on_change:
            raise InputError(f"{state_dir}: holds a run with other DISCA parameters or another store; "
                             "delete the directory to start over")
        log.info("%s: parameters or store changed: starting over", state_dir)
        for child in state_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if not params_file.exists():
        params_file.write_text(dumps(identity))
    return state_dir


def read_identity(state_dir) -> dict:
    return json.loads((Path(state_dir) / "params.json").read_text())
