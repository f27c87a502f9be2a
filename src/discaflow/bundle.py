"""A trained DISCA model bundle: YOPO feature network + PCA + Gaussian mixture, applied to new
subtomograms without training (``discaflow predict``) or fine-tuned (``discaflow disca --init-from``).

A bundle is a directory: ``features.keras`` (Keras 3 format, loaded with ``safe_mode=True``),
``mixture.npz`` (PCA mean and components, mixture weights, means, covariances; no object arrays, no
pickle) and ``bundle.json`` (box size, voxel size, K, provenance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from discaflow.errors import InputError

FORMAT = "discaflow-disca-bundle"


@dataclass
class Bundle:
    feature_model: object
    pca_mean: np.ndarray
    pca_components: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    box_vox: int
    voxel_size_A: float
    info: dict

    @property
    def k(self) -> int:
        return len(self.weights)

    def mixture(self):
        """The sklearn GaussianMixture with these parameters (for predict/predict_proba)."""
        from discaflow.cluster.mixtures import mixture_from_params

        return mixture_from_params(self.weights, self.means, self.covariances)


def write_bundle(path, feature_model, mixture_npz: dict, box_vox: int, voxel_size_A: float, info: dict) -> Path:
    """Write a bundle directory atomically (temporary directory, then rename)."""
    from discaflow.io.atomic import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        feature_model.save(tmp / "features.keras")
        np.savez(tmp / "mixture.npz", **{k: np.asarray(v, np.float64) for k, v in mixture_npz.items()})
        (tmp / "bundle.json").write_text(json.dumps({"format": FORMAT, "format_version": 1, "box_vox": int(box_vox),
                                                      "voxel_size_A": float(voxel_size_A), **info}, indent=2))
    return path


def read_bundle_info(path) -> dict:
    """A bundle's ``bundle.json`` (box, voxel size, K, provenance), checked; the network is not loaded."""
    path = Path(path)
    meta_path = path / "bundle.json"
    if not meta_path.exists():
        raise InputError(f"{path}: not a DISCA model bundle (no bundle.json); give the bundle directory written by discaflow disca")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError("wrong format tag")
        meta["box_vox"], meta["voxel_size_A"] = int(meta["box_vox"]), float(meta["voxel_size_A"])
    except Exception as exc:  # corrupt files surface as many exception types
        raise InputError(f"{path}: corrupt or unreadable model bundle ({type(exc).__name__}); re-export it with discaflow disca") from None
    return meta


def load_bundle(path) -> Bundle:
    """Read a bundle; a missing or corrupt one is an :class:`InputError` naming it."""
    path = Path(path)
    meta = read_bundle_info(path)
    try:
        with np.load(path / "mixture.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("pca_mean", "pca_components", "weights", "means", "covariances")}
        from discaflow.model import load_model

        feature_model = load_model(path / "features.keras")
    except Exception as exc:  # corrupt files surface as many exception types
        raise InputError(f"{path}: corrupt or unreadable model bundle ({type(exc).__name__}); re-export it with discaflow disca") from None
    return Bundle(feature_model=feature_model, box_vox=meta["box_vox"], voxel_size_A=meta["voxel_size_A"],
                  info={**meta, "path": str(path)}, **arrays)


def check_compatible(info: dict, store, name) -> None:
    """A store the bundle ``name`` (its ``bundle.json``, :func:`read_bundle_info`) can label: the same
    box, and the same voxel size within 1 %, as it was trained on."""
    box, vs = info["box_vox"], info["voxel_size_A"]
    if store.box_vox != box:
        raise InputError(f"{store.path}: {store.box_vox}³ subtomograms, the model {name} was trained on {box}³; "
                         "extract with the model's box size")
    if abs(store.voxel_size_A - vs) > 0.01 * vs:
        raise InputError(f"{store.path}: {store.voxel_size_A:g} Å voxels, the model {name} was trained on {vs:g} Å; "
                         "extract at that voxel size (target_voxel_size_A)")


def predict_store(bundle: Bundle, store, batch_size: int = 128, progress=None):
    """Labels, posteriors and 1024-d features of every subtomogram of an open store."""
    check_compatible(bundle.info, store, bundle.info["path"])
    n = len(store)
    if n == 0:
        raise InputError(f"{store.path}: the store holds no subtomograms")
    from discaflow.disca.mstep import store_features

    feats = store_features(bundle.feature_model, store, batch_size, progress=progress)
    z = (feats.astype(np.float64) - bundle.pca_mean) @ bundle.pca_components.T
    gm = bundle.mixture()
    return gm.predict(z), gm.predict_proba(z).max(axis=1), feats


def labels_table(store, labels: np.ndarray, posterior: np.ndarray):
    """The labels table written by ``disca`` and ``predict``: particle index, tomogram, unbinned
    x/y/z, ``rlnClassNumber`` (1-based) and posterior, one row per subtomogram of an open store."""
    import pandas as pd

    coords, tomo, names = store.column("coords"), store.column("tomogram"), store.tomogram_names
    return pd.DataFrame({
        "dfParticleIndex": np.arange(len(labels)),
        "rlnTomoName": [names[t] if 0 <= t < len(names) else "" for t in tomo],
        "rlnCoordinateX": coords[:, 0], "rlnCoordinateY": coords[:, 1], "rlnCoordinateZ": coords[:, 2],
        "rlnClassNumber": np.asarray(labels) + 1, "dfPosterior": posterior,
    })


def run_predict(store_path, bundle_path, outs) -> tuple:
    """Label a store with a bundle (one inference) and write the table to every path in ``outs``
    (``.star``: STAR, else CSV), each atomically. Returns (table, K)."""
    from discaflow.io.atomic import atomic_path
    from discaflow.io.star import write_star
    from discaflow.io.store import SubtomogramStore

    with SubtomogramStore(store_path) as store:  # checked before the network is loaded
        check_compatible(read_bundle_info(bundle_path), store, bundle_path)
    from discaflow.progress import Progress

    bundle = load_bundle(bundle_path)
    with SubtomogramStore(store_path) as store:
        p = Progress("predict", len(store))
        labels, posterior, _ = predict_store(bundle, store, progress=p.to)
        p.close()
        table = labels_table(store, labels, posterior)
    for out in outs:
        if str(out).endswith(".star"):
            write_star(out, table)
        else:
            with atomic_path(out) as tmp:
                table.to_csv(tmp, index=False)
    return table, bundle.k
