"""Datasets of a configuration: which tomograms each holds, and each stage's effective settings."""

from __future__ import annotations

import glob
from pathlib import Path

from discaflow.errors import InputError


def tomogram_name(index: int) -> str:
    """Name of the index-th simulated tomogram."""
    return f"tomo_{index:03d}"


def dataset_tomograms(config: dict, dataset: str, results: str, sheet: dict | None = None) -> dict[str, str]:
    """Tomogram name (file stem, or the sheet's name) → path for one dataset, in name order. ``sheet``:
    the dataset's sheet rows when the caller has read them (``dataset_sheet``), else read here.

    Raises :class:`InputError` for a glob that matches nothing, a missing file, an unknown
    simulation, or two tomograms with the same name.
    """
    section = config["datasets"][dataset]
    if "simulated" in section:
        sim = section["simulated"]
        if sim not in config.get("simulation", {}):
            raise InputError(f"config key 'datasets.{dataset}.simulated': no simulation section named {sim!r}")
        count = config["simulation"][sim]["tomograms"]["count"]
        if count == 0:
            raise InputError(f"config key 'datasets.{dataset}.simulated': simulation {sim!r} makes no tomograms (tomograms.count is 0)")
        return {tomogram_name(i): f"{results}/simulated/{sim}/tomograms/{tomogram_name(i)}.mrc" for i in range(count)}
    if section.get("sheet"):
        rows = sheet if sheet is not None else dataset_sheet(config, dataset)
        out = {name: row["path"] for name, row in rows.items()}
        check_headers(config, dataset, out, rows)
        return dict(sorted(out.items()))
    spec = section["tomograms"]
    if isinstance(spec, str):
        paths = sorted(glob.glob(spec))
        if not paths:
            raise InputError(f"config key 'datasets.{dataset}.tomograms': {spec!r} matches no file; check the path or pattern")
    else:
        paths = list(spec)
        for p in paths:
            if not Path(p).exists():
                raise InputError(f"config key 'datasets.{dataset}.tomograms': {p}: file not found")
    out: dict[str, str] = {}
    for p in paths:
        name = Path(p).stem
        if name in out:
            raise InputError(f"config key 'datasets.{dataset}.tomograms': {out[name]} and {p} have the same name {name!r}; rename one")
        out[name] = p
    check_headers(config, dataset, out)
    return dict(sorted(out.items()))


def dataset_sheet(config: dict, dataset: str) -> dict[str, dict]:
    """A dataset's tomogram sheet (name → row, ``discaflow.io.sheets``); empty without one."""
    from discaflow.io.sheets import read_sheet

    sheet = config["datasets"][dataset].get("sheet")
    return read_sheet(sheet) if sheet else {}


def check_headers(config: dict, dataset: str, tomograms: dict[str, str], rows: dict | None = None) -> None:
    """Read every tomogram header of a dataset when the job graph is built, so that a corrupt file, a
    voxel size of 0, mixed voxel sizes, a box smaller than the particle or a tomogram smaller than the
    box stops the dry run with one line instead of a job failing after every pick and extraction.
    ``rows``: the dataset's sheet (a row's voxel_size_A overrides the header). Tomograms of different
    voxel sizes may share a dataset when it has a target_voxel_size_A (each is extracted at exactly it)."""
    from discaflow.io.slabs import SlabReader, binned_shape
    from discaflow.pick import extraction_grid

    section = config["datasets"][dataset]
    box = stage_settings(config, dataset, "extract").get("box_vox", 24)
    diameter = 2 * stage_settings(config, dataset, "pick").get("particle_radius_A", 70)
    key = f"config key 'datasets.{dataset}"
    first = None
    target = section.get("target_voxel_size_A")
    for name, path in tomograms.items():
        reader = SlabReader(path)  # a corrupt or non-3-D file is an InputError naming it
        vs = ((rows or {}).get(name) or {}).get("voxel_size_A") or section.get("voxel_size_A") or reader.voxel_size_A
        if vs <= 0:
            raise InputError(f"{key}.voxel_size_A': {path} has voxel size 0 in its header; set voxel_size_A for this dataset")
        if first is None:
            first = (path, vs)
        elif abs(vs - first[1]) > 0.01 * first[1] and not target:
            raise InputError(f"{key}.tomograms': {first[0]} has {first[1]:g} Å voxels and {path} {vs:g} Å; set "
                             "target_voxel_size_A (each tomogram is then extracted at exactly that size) or put them in "
                             "separate datasets")
        factor, out_vs = extraction_grid(vs, target)
        if box * out_vs < diameter:
            raise InputError(f"{key}': the {box}-voxel box at {out_vs:g} Å/voxel spans {box * out_vs:g} Å, less than "
                             f"the particle diameter {diameter:g} Å (2 x pick.particle_radius_A); raise extract.box_vox "
                             "or target_voxel_size_A")
        bshape = binned_shape(reader.shape, factor)
        if min(bshape) * (vs * factor / out_vs) <= box:
            raise InputError(f"{key}': {path} is {bshape[::-1]} voxels (x, y, z) after binning {factor}, not larger than "
                             f"extract.box_vox {box}; lower box_vox or target_voxel_size_A")


def stage_settings(config: dict, dataset: str, stage: str) -> dict:
    """The top-level ``stage`` section with the dataset's overrides applied."""
    return {**config.get(stage, {}), **config["datasets"][dataset].get(stage, {})}
