"""Datasets of a configuration: which tomograms each holds, and each stage's effective settings."""

from __future__ import annotations

import glob
from pathlib import Path

from discaflow.errors import InputError


def tomogram_name(index: int) -> str:
    """Name of the index-th simulated tomogram."""
    return f"tomo_{index:03d}"


def dataset_tomograms(config: dict, dataset: str, results: str) -> dict[str, str]:
    """Tomogram name (file stem) → path for one dataset, in name order.

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
    return dict(sorted(out.items()))


def stage_settings(config: dict, dataset: str, stage: str) -> dict:
    """The top-level ``stage`` section with the dataset's overrides applied."""
    return {**config.get(stage, {}), **config["datasets"][dataset].get(stage, {})}
