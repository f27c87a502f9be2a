"""Tomogram sheets: one row per tomogram (name, path, voxel size, tilt range, mask), from a TSV or a
RELION 5 ``tomograms.star``; rows checked against ``workflow/schemas/sheet.schema.yaml``."""

from __future__ import annotations

import math
import os
from pathlib import Path

from discaflow.errors import InputError

COLUMNS = ("name", "path", "voxel_size_A", "tilt_min_deg", "tilt_max_deg", "mask")
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "sheet.schema.yaml"


def read_sheet(path: str | os.PathLike) -> dict[str, dict]:
    """Tomogram name → row (every key of ``COLUMNS``; None where not given; paths resolved).

    A ``.star`` file is read as RELION 5 ``tomograms.star`` (``rlnTomoName``,
    ``rlnTomoReconstructedTomogram``, voxel size = ``rlnTomoTiltSeriesPixelSize`` ×
    ``rlnTomoTomogramBinning``, tilt range from each ``rlnTomoTiltSeriesStarFile`` where it exists);
    anything else as a tab-separated table with a header row.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: tomogram sheet not found")
    rows = _relion5_rows(path) if path.suffix.lower() == ".star" else _tsv_rows(path)
    if not rows:
        raise InputError(f"{path}: the sheet lists no tomogram")
    validator = _validator()
    out: dict[str, dict] = {}
    row_of: dict[str, int] = {}  # name -> its row number, for the repeated-name message
    for i, row in enumerate(rows, start=1):
        errors = sorted(validator.iter_errors(row), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            e = errors[0]
            where = f"column {e.absolute_path[0]!r}" if e.absolute_path else "row"
            raise InputError(f"{path}: tomogram row {i} ({row.get('name', '?')}): {where}: {e.message}")
        if row["name"] in out:
            raise InputError(f"{path}: tomogram name {row['name']!r} appears twice (rows {row_of[row['name']]} and {i}); "
                             "names must be unique")
        full = {k: row.get(k) for k in COLUMNS}
        if (full["tilt_min_deg"] is None) != (full["tilt_max_deg"] is None):
            raise InputError(f"{path}: tomogram row {i} ({row['name']}): give both tilt_min_deg and tilt_max_deg, or neither")
        full["path"] = _find(path, full["path"], i, row["name"])
        if full["mask"]:
            full["mask"] = _find(path, full["mask"], i, row["name"])
        out[row["name"]], row_of[row["name"]] = full, i
    return out


def tilt_ranges(rows: dict[str, dict]) -> dict[str, list[float]]:
    """Tomogram name → [tilt_min_deg, tilt_max_deg] of the rows that give one."""
    return {name: [row["tilt_min_deg"], row["tilt_max_deg"]] for name, row in rows.items()
            if row.get("tilt_min_deg") is not None}


def _validator():
    import jsonschema
    import yaml

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _find(sheet: Path, given: str, row: int, name: str) -> str:
    """A path of the sheet: absolute as given; relative from the sheet's folder or one above it (a
    RELION project's paths are relative to the project, two folders above Job/jobNNN/tomograms.star)."""
    p = Path(given)
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [folder / p for folder in [sheet.parent, *sheet.parent.parents]]
    for c in candidates:
        if c.exists():
            return str(c)
    raise InputError(f"{sheet}: tomogram row {row} ({name}): {given}: file not found (looked in {sheet.parent} and the "
                     "folders above it)")


def _number(text: str, sheet: Path, row: int, column: str):
    if text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{sheet}: tomogram row {row}: column {column!r}: {text!r} is not a number") from None


def _tsv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in COLUMNS]
        if unknown or "name" not in header or "path" not in header:
            raise InputError(f"{path}: a tomogram sheet is tab-separated with columns {', '.join(COLUMNS)} (name and path "
                             f"required); found {header}" + (f", unknown {unknown}" if unknown else ""))
        rows = []
        for i, r in enumerate(reader, start=1):
            row = {k: (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k is not None}
            for col in ("voxel_size_A", "tilt_min_deg", "tilt_max_deg"):
                if col in row:
                    row[col] = _number(row[col], path, i, col)
            if "mask" in row and not row["mask"]:
                row["mask"] = None
            rows.append(row)
    return rows


def _relion5_rows(path: Path) -> list[dict]:
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises several kinds on a broken file
        raise InputError(f"{path}: not a readable STAR file ({exc})") from None
    table = blocks.get("global", next(iter(blocks.values()), None))
    need = ("rlnTomoName", "rlnTomoReconstructedTomogram")
    if table is None or not hasattr(table, "columns") or any(c not in table.columns for c in need):
        raise InputError(f"{path}: not a RELION 5 tomograms.star: its global table needs columns {', '.join(need)}")
    rows = []
    for i, r in enumerate(table.to_dict("records"), start=1):
        row = {"name": str(r["rlnTomoName"]), "path": str(r["rlnTomoReconstructedTomogram"])}
        if "rlnTomoTiltSeriesPixelSize" in r:
            binning = _number(r.get("rlnTomoTomogramBinning", 1.0), path, i, "rlnTomoTomogramBinning") or 1.0
            pixel = _number(r["rlnTomoTiltSeriesPixelSize"], path, i, "rlnTomoTiltSeriesPixelSize")
            row["voxel_size_A"] = None if pixel is None else pixel * binning
        series = r.get("rlnTomoTiltSeriesStarFile")
        if isinstance(series, str):
            tilts = _series_tilts(path, series)
            if tilts:
                row["tilt_min_deg"], row["tilt_max_deg"] = min(tilts), max(tilts)
        rows.append(row)
    return rows


def _series_tilts(sheet: Path, series: str) -> list[float]:
    """Nominal tilt angles of a RELION 5 tilt-series STAR file (empty where it cannot be found)."""
    import starfile

    for folder in [sheet.parent, *sheet.parent.parents]:
        f = folder / series
        if f.is_file():
            blocks = starfile.read(f, always_dict=True)
            for table in blocks.values():
                if hasattr(table, "columns") and "rlnTomoNominalStageTiltAngle" in table.columns:
                    return [float(t) for t in table["rlnTomoNominalStageTiltAngle"]]
            return []
    return []
