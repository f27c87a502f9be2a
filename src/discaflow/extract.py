"""Extraction of subtomograms at picked positions into the HDF5 store, in bounded memory.

Boxes are cut from the block-binned tomogram. Particles are visited in z order through a row cache, so
every binned row is read once and memory holds about one box height of binned rows. Where an integer
factor reaches the target voxel size, a particle's box is centred on the binned voxel nearest to its
position; otherwise (``pick.extraction_grid``) the box is sampled on the exact target grid, centred on
the position itself, by cubic-spline interpolation of the binned rows. Boxes that cross the tomogram
edge are skipped (default) or padded with the box's mean.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from discaflow.errors import InputError
from discaflow.io.slabs import BinnedRowCache, SlabReader, binned_shape
from discaflow.io.store import StoreWriter, SubtomogramStore
from discaflow.pick import check_not_constant, extraction_grid, resolve_voxel_size

log = logging.getLogger(__name__)

COORD_COLUMNS = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]


def binned_centres(xyz_unbinned: np.ndarray, factor: int) -> np.ndarray:
    """Nearest binned voxel (z, y, x) of unbinned 0-based positions (x, y, z)."""
    return np.rint((np.asarray(xyz_unbinned, float)[:, ::-1] - (factor - 1) / 2.0) / factor).astype(np.int64)


def sample_box(rows: np.ndarray, centre_zyx, box: int, step: float) -> np.ndarray:
    """A ``box``³ cube sampled from ``rows`` (z, y, x) by cubic-spline interpolation: voxel k of each
    axis lies at ``centre + (k - box // 2) * step`` (in voxels of ``rows``); NaN outside ``rows``."""
    from scipy import ndimage

    k = (np.arange(box) - box // 2) * float(step)
    axes = [c + k for c in np.asarray(centre_zyx, float)]
    grid = np.meshgrid(*axes, indexing="ij")
    out = ndimage.map_coordinates(rows.astype(np.float32, copy=False), grid, order=3, mode="nearest")
    outside = np.zeros(out.shape, bool)
    for ax, a in enumerate(axes):
        bad = (a < -0.5) | (a > rows.shape[ax] - 0.5)
        outside |= bad.reshape([-1 if i == ax else 1 for i in range(3)])
    out[outside] = np.nan
    return out.astype(np.float32)


def outside_tomogram(xyz: np.ndarray, size_xyz) -> np.ndarray:
    """Indices of the unbinned positions (n, 3: x, y, z) that lie outside a tomogram of ``size_xyz``
    pixels (rows of ``size_xyz`` per position allowed); voxel centres span -0.5 … size - 0.5."""
    size = np.asarray(size_xyz, float)
    return np.flatnonzero(((xyz < -0.5) | (xyz > size - 0.5)).any(axis=1))


def checked_coordinates(picks: pd.DataFrame, source: str, size_xyz, tomogram: str) -> np.ndarray:
    """The (n, 3) unbinned x, y, z of a particle table, or an InputError naming ``source`` for a
    missing column, a non-numeric / NaN / infinite value, a repeated row, or a position outside a
    tomogram of ``size_xyz`` pixels (positions are voxel centres: -0.5 … size - 0.5)."""
    if not len(picks):
        return np.zeros((0, 3))
    missing = [c for c in COORD_COLUMNS if c not in picks.columns]
    if missing:
        raise InputError(f"{source}: lacks columns {missing}; give a STAR table with rlnCoordinateX/Y/Z")
    xyz = picks[COORD_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=1))
    if len(bad):
        row = picks[COORD_COLUMNS].iloc[bad[0]].tolist()
        raise InputError(f"{source}: {len(bad)} row(s) with a coordinate that is not a finite number (first: row {bad[0] + 1}, "
                         f"{row}); fix or remove them")
    dup = np.flatnonzero(pd.DataFrame(xyz).duplicated().to_numpy())
    if len(dup):
        raise InputError(f"{source}: {len(dup)} row(s) repeat an earlier row's coordinates (first: row {dup[0] + 1}); "
                         "remove the duplicates (each would be extracted twice)")
    size = np.asarray(size_xyz, float)
    out = outside_tomogram(xyz, size)
    if len(out):
        raise InputError(f"{source}: {len(out)} of {len(xyz)} positions lie outside {tomogram} ({size[0]:g} x {size[1]:g} x "
                         f"{size[2]:g} pixels; first: row {out[0] + 1}, {xyz[out[0]].round(1).tolist()}); give coordinates "
                         "in unbinned pixels of this tomogram")
    return xyz


def extract_tomogram(
    tomogram_path: str | os.PathLike,
    picks: pd.DataFrame,
    out_path: str | os.PathLike,
    box_vox: int = 24,
    voxel_size_A: float | None = None,
    target_voxel_size_A: float | None = None,
    dtype: str = "float16",
    edge: str = "skip",
    batch_size: int = 256,
    tomo_name: str | None = None,
    picks_name: str | None = None,
) -> dict:
    """Extract the particles of one tomogram into a store at ``out_path``; returns counts.

    Coordinates that are not numbers, repeat an earlier row or lie outside the tomogram are an
    InputError naming ``picks_name`` (they mean a table of another tomogram, unit or binning)."""
    if edge not in ("skip", "pad"):
        raise InputError(f"extract.edge: must be 'skip' or 'pad', got {edge!r}")
    reader = SlabReader(tomogram_path)
    vs = resolve_voxel_size(reader, voxel_size_A)
    factor, out_vs = extraction_grid(vs, target_voxel_size_A)
    step = out_vs / (vs * factor)  # subtomogram voxel in binned voxels: 1 unless resampled
    exact = abs(step - 1) > 1e-9
    bshape = binned_shape(reader.shape, factor)
    b = int(box_vox)
    if min(bshape) * (1 / step) < b:
        raise InputError(f"{reader.path}: binned tomogram {bshape[::-1]} (x, y, z) is smaller than the {b}-voxel box; "
                         "use a smaller box_vox or less binning")
    source = picks_name or f"particle table for {reader.path.name}"
    xyz = checked_coordinates(picks, source, reader.shape[::-1], reader.path.name)
    check_not_constant(reader)
    name = tomo_name or reader.path.stem
    n = len(picks)
    score = picks["rlnAutopickFigureOfMerit"].to_numpy(float) if n and "rlnAutopickFigureOfMerit" in picks else np.full(n, np.nan)
    if exact:
        # continuous binned position of each particle; the box spans centre ± (b//2) steps, and the
        # spline reads 2 more rows on each side
        centres_f = (xyz[:, ::-1] - (factor - 1) / 2.0) / factor
        first, last = centres_f - (b // 2) * step, centres_f + (b - 1 - b // 2) * step
        inside = np.all((first >= -0.5) & (last <= np.array(bshape) - 0.5), axis=1)
        start = np.floor(first).astype(np.int64) - 2
        stop = np.ceil(last).astype(np.int64) + 3
    else:
        centres = binned_centres(xyz, factor)
        start = centres - b // 2
        stop = start + b
        inside = np.all((start >= 0) & (stop <= np.array(bshape)), axis=1)
    if edge == "skip":
        sel = np.flatnonzero(inside)
    else:
        sel = np.arange(n)
    n_edge = int((~inside).sum())
    order = sel[np.argsort(np.maximum(start[sel, 0], 0), kind="stable")]
    cache = BinnedRowCache(reader, factor)
    meta = {"extract": {"tomogram": reader.path.name, "edge": edge, "skipped_at_edge": n_edge if edge == "skip" else 0,
                        "padded_at_edge": n_edge if edge == "pad" else 0}}
    binning = out_vs / vs if exact else factor  # subtomogram voxel in tomogram pixels
    with StoreWriter(out_path, b, out_vs, dtype=dtype, binning=binning, tomogram_names=[name],
                     source_files=[reader.path], metadata=meta) as writer:
        for i0 in range(0, len(order), batch_size):
            idx = order[i0: i0 + batch_size]
            batch = np.empty((len(idx), b, b, b), np.float32)
            for j, k in enumerate(idx):
                z0, y0, x0 = start[k]
                z1, y1, x1 = stop[k]
                lo, hi = max(z0, 0), min(z1, bshape[0])
                rows = cache.get(lo, hi)
                ys, ye = max(y0, 0), min(y1, bshape[1])
                xs, xe = max(x0, 0), min(x1, bshape[2])
                if exact:
                    # spline support outside the tomogram repeats its edge voxel; samples outside are NaN
                    box = sample_box(rows[:, ys:ye, xs:xe], centres_f[k] - np.array([lo, ys, xs]), b, step)
                else:
                    box = np.full((b, b, b), np.nan, np.float32)
                    box[lo - z0: hi - z0, ys - y0: ye - y0, xs - x0: xe - x0] = rows[:, ys:ye, xs:xe]
                if not inside[k]:
                    box[np.isnan(box)] = np.nanmean(box)
                batch[j] = box
            writer.append(batch, coords=xyz[idx], tomogram=0, score=score[idx])
    if n_edge:
        verb = "skipped" if edge == "skip" else "padded"
        log.info("%s: %d of %d particles %s because their box crosses the tomogram edge", reader.path, n_edge, n, verb)
    log.info("%s: extracted %d subtomograms of %d³ at %.2f Å/voxel (binning %d%s)", reader.path, len(order), b, out_vs, factor,
             ", then resampled" if exact else "")
    return {"tomogram": name, "picked": n, "extracted": int(len(order)), "edge": n_edge, "binning": binning}


def gather_stores(stores: Sequence[str | os.PathLike], out_path: str | os.PathLike, dataset: str = "dataset",
                  batch_size: int = 1024) -> dict:
    """Merge per-tomogram stores into one dataset store (tomogram indices renumbered).

    All inputs must share box, voxel size and dtype. A dataset with no particles at all is an error.
    """
    paths = [Path(p) for p in stores]
    if not paths:
        raise InputError(f"dataset {dataset}: no tomograms to gather")
    opened = [SubtomogramStore(p) for p in paths]
    try:
        seen: dict[str, Path] = {}
        for s in opened:
            for t in s.tomogram_names or [s.path.stem]:
                if t in seen:
                    raise InputError(f"{s.path}: tomogram {t!r} is also in {seen[t]} (the same store given twice?); "
                                     "give each tomogram's store once")
                seen[t] = s.path
        first = opened[0]
        for s in opened[1:]:
            if (s.box_vox, s.voxel_size_A, s.dtype) != (first.box_vox, first.voxel_size_A, first.dtype):
                raise InputError(f"{s.path}: box {s.box_vox}, voxel {s.voxel_size_A} Å, {s.dtype} differ from "
                                 f"{first.path} ({first.box_vox}, {first.voxel_size_A} Å, {first.dtype}); extract all tomograms alike")
        total = sum(len(s) for s in opened)
        if total == 0:
            raise InputError(f"dataset {dataset}: no particles were picked in any of its {len(paths)} tomograms; "
                             "lower pick.threshold_t, use pick.threshold: percentile, or check pick.polarity")
        names = [n for s in opened for n in s.tomogram_names]
        sources = [f for s in opened for f in s.source_files]
        per_tomo = {s.tomogram_names[0] if s.tomogram_names else s.path.stem: s.metadata.get("extract", {}) for s in opened}
        with StoreWriter(out_path, first.box_vox, first.voxel_size_A, dtype=str(first.dtype), binning=first.binning,
                         normalize=False, input_normalized=first.normalized, tomogram_names=names,
                         source_files=sources, metadata={"dataset": dataset, "extract": per_tomo}) as w:
            offset = 0
            for s in opened:
                coords, tomo, score = s.column("coords"), s.column("tomogram"), s.column("score")
                for a in range(0, len(s), batch_size):
                    e = min(len(s), a + batch_size)
                    w.append(s.read(a, e, finite=True), coords=coords[a:e], tomogram=np.where(tomo[a:e] >= 0, tomo[a:e] + offset, -1), score=score[a:e])
                offset += len(s.tomogram_names)
    finally:
        for s in opened:
            s.close()
    log.info("dataset %s: %d subtomograms from %d tomograms", dataset, total, len(paths))
    return {"dataset": dataset, "n": total, "tomograms": len(paths)}


def run_extract(tomogram, picks_star, out_path, settings: dict, voxel_size_A=None, target_voxel_size_A=None,
                tomo_name=None) -> dict:
    """Extract one tomogram with a configuration ``extract`` section."""
    from discaflow.io.star import read_star

    return extract_tomogram(tomogram, read_star(picks_star), out_path, box_vox=settings.get("box_vox", 24),
                            voxel_size_A=voxel_size_A, target_voxel_size_A=target_voxel_size_A,
                            dtype=settings.get("dtype", "float16"), edge=settings.get("edge", "skip"), tomo_name=tomo_name,
                            picks_name=str(picks_star))


def subset_store(store_path, labels_csv, out_path, exclude_classes, batch_size: int = 1024) -> dict:
    """A store of the particles of ``store_path`` whose class in ``labels_csv`` is not in
    ``exclude_classes`` (multi-stage mining: DISCA again on what the first stage did not explain)."""
    from discaflow.io.tables import read_table

    labels = read_table(labels_csv)
    exclude = set(int(c) for c in exclude_classes)
    unknown = exclude - set(int(c) for c in labels["rlnClassNumber"].unique())
    if unknown:
        raise InputError(f"stages.exclude_classes: classes {sorted(unknown)} are not in {labels_csv}; "
                         f"it has classes {sorted(int(c) for c in labels['rlnClassNumber'].unique())}")
    keep = np.sort(labels.loc[~labels["rlnClassNumber"].isin(exclude), "dfParticleIndex"].to_numpy(np.int64))
    if len(keep) == 0:
        raise InputError(f"stages.exclude_classes: excluding {sorted(exclude)} leaves no particle of {labels_csv}")
    with SubtomogramStore(store_path) as s:
        coords, tomo, score = s.column("coords"), s.column("tomogram"), s.column("score")
        with StoreWriter(out_path, s.box_vox, s.voxel_size_A, dtype=str(s.dtype), binning=s.binning, normalize=False,
                         input_normalized=s.normalized, tomogram_names=s.tomogram_names, source_files=s.source_files,
                         metadata={**s.metadata, "subset_of": s.path.name, "excluded_classes": sorted(exclude),
                                   "parent_indices_note": "row i is parent row parent_index[i]"}) as w:
            for a in range(0, len(keep), batch_size):
                sel = keep[a: a + batch_size]
                w.append(s.take(sel), coords=coords[sel], tomogram=tomo[sel], score=score[sel])
    log.info("stage subset: %d of %d particles (classes %s excluded)", len(keep), len(labels), sorted(exclude))
    return {"kept": int(len(keep)), "of": int(len(labels))}
