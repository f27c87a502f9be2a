"""CSV tables passed between stages (labels, poses), read with a check of the columns they need."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from discaflow.errors import InputError

LABEL_COLUMNS = ("dfParticleIndex", "rlnClassNumber")
POSE_COLUMNS = ("dfParticleIndex", "rlnClassNumber", "dfHalf", "dfEulerRot", "dfEulerTilt", "dfEulerPsi",
                "dfShiftX", "dfShiftY", "dfShiftZ")


def read_table(path: str | os.PathLike, columns=LABEL_COLUMNS) -> pd.DataFrame:
    """Read a CSV table; a missing or unreadable file or a missing column is a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; run the stage that writes it first")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({type(exc).__name__}); rerun the stage that writes it") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: lacks columns {missing}; give the table written by discaflow")
    return table


def check_labels(table: pd.DataFrame, store, path) -> pd.DataFrame:
    """``table`` (a labels table read from ``path``) checked against the open ``store`` it must
    describe; returns it with integer index and class columns. A non-integer, negative, repeated or
    out-of-range particle index or class, or rows whose tomogram or coordinates are not the store's
    (labels of another store), is an InputError naming ``path``."""
    import numpy as np

    n = len(store)
    if n == 0:
        raise InputError(f"{store.path}: the store holds no subtomograms; check picking and extraction")
    out = table.copy()
    for col, lo in (("dfParticleIndex", 0), ("rlnClassNumber", 1)):
        v = pd.to_numeric(out[col], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isfinite(v) | (v != np.round(v)) | (v < lo))
        if len(bad):
            raise InputError(f"{path}: {col} must be an integer >= {lo}; row {bad[0] + 1} has {out[col].iloc[bad[0]]!r} "
                             "(a truncated or edited table?); rerun the stage that writes it")
        out[col] = v.astype(np.int64)
    idx = out["dfParticleIndex"].to_numpy()
    if idx.max(initial=-1) >= n:
        raise InputError(f"{path}: particle index {int(idx.max())} but {store.path} holds {n} subtomograms; "
                         "give the labels written for this store")
    if len(np.unique(idx)) != len(idx):
        raise InputError(f"{path}: a particle index appears twice; give the labels written by discaflow for this store")
    coords, tomo, names = store.column("coords"), store.column("tomogram"), store.tomogram_names
    xyz_cols = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
    if coords is not None and all(c in out.columns for c in xyz_cols) and len(idx):
        mine = coords[idx]
        theirs = out[xyz_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        same = np.isclose(mine, theirs, atol=1e-3, equal_nan=True).all(axis=1)
        if "rlnTomoName" in out.columns and tomo is not None:
            store_names = np.array([names[t] if 0 <= t < len(names) else "" for t in tomo[idx]], dtype=object)
            same &= out["rlnTomoName"].fillna("").astype(str).to_numpy(object) == store_names
        if not same.all():
            k = int(np.flatnonzero(~same)[0])
            raise InputError(f"{path}: row {k + 1} (particle {idx[k]}) does not match {store.path} (another tomogram or "
                             "position): these labels belong to another store; give the labels written for this store")
    return out
