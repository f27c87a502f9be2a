"""STAR particle tables through ``starfile``, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import starfile

from discaflow.errors import InputError
from discaflow.io.atomic import atomic_path


def write_star(path: str | os.PathLike, tables: dict[str, pd.DataFrame] | pd.DataFrame) -> None:
    """Write one table (block ``particles``) or several named blocks to ``path`` atomically.

    starfile's "Created … at <time>" comment is replaced by a fixed one, so the same table always
    gives the same bytes (reruns and Snakemake's checksums see no change where there is none).
    """
    if isinstance(tables, pd.DataFrame):
        tables = {"particles": tables}
    with atomic_path(path) as tmp:
        starfile.write(tables, tmp, overwrite=True)
        lines = tmp.read_text().splitlines(keepends=True)
        if lines and lines[0].startswith("# Created by the starfile"):
            lines[0] = "# written by discaflow\n"
        tmp.write_text("".join(lines))


def read_star(path: str | os.PathLike, block: str = "particles") -> pd.DataFrame:
    """Read one block of a STAR file as a DataFrame (an empty one when the block has no rows)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: STAR file not found")
    try:
        data = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many types for malformed text
        raise InputError(f"{path}: not a readable STAR file ({type(exc).__name__}); check the file") from None
    if block not in data:
        if not data:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
            if b"data_" not in head:
                raise InputError(f"{path}: not a STAR file (no data_ block); give the particle table written by pick")
            return pd.DataFrame()
        raise InputError(f"{path}: no data_{block} block (found {', '.join(data)})")
    return data[block]
