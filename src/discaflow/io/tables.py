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
