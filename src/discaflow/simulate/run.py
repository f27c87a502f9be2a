"""Entry points that turn one simulation section of the configuration into files.

Used by both the command line (``discaflow simulate``) and the Snakemake rules, so a stage runs the
same way inside and outside the workflow. The section's keys are documented in ``config/README.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from discaflow.datasets import tomogram_name
from discaflow.io.mrc import write_volume
from discaflow.io.star import write_star
from discaflow.simulate.imaging import Imaging
from discaflow.simulate.structures import load_structure
from discaflow.simulate.subtomograms import noise_variance, simulate_subtomograms
from discaflow.simulate.tomograms import simulate_tomogram

log = logging.getLogger(__name__)

IMAGING_DEFAULTS = dict(tilt_min_deg=-60.0, tilt_max_deg=60.0, tilt_step_deg=2.0, voltage_kV=300.0,
                        defocus_um=-5.0, cs_mm=2.7, amplitude_contrast=0.07, bfactor_A2=0.0)


def imaging_from_section(section: dict) -> Imaging:
    return Imaging(voxel_size_A=float(section["voxel_size_A"]), snr=float(section["snr"]),
                   snr_convention=section.get("snr_convention", "final_volume"),
                   **{**IMAGING_DEFAULTS, **section.get("imaging", {})})


def structures_from_section(section: dict, base_dir: str | Path = "."):
    """Load the section's structures (name → path, relative paths from ``base_dir``) in name order."""
    base = Path(base_dir)
    items = section["structures"]
    if isinstance(items, list):
        items = {Path(p).stem: p for p in items}
    return [load_structure(base / path, float(section["voxel_size_A"]), name=name,
                           assembly=bool(section.get("assembly", True)))
            for name, path in items.items()]


def run_subtomograms(section: dict, out_path, base_dir=".", progress=True) -> dict:
    """Write the labelled subtomogram store of one simulation section."""
    sub = section.get("subtomograms", {})
    return simulate_subtomograms(
        structures_from_section(section, base_dir), out_path, imaging_from_section(section),
        per_class=int(sub.get("per_class", 100)), box_vox=int(section.get("box_vox", 24)),
        max_shift_vox=float(sub.get("max_shift_vox", 1.0)), seed=int(section.get("seed", 0)),
        dtype=sub.get("dtype", "float16"), progress=progress,
    )


def run_tomogram(section: dict, index: int, out_mrc, out_star, out_clean=None, base_dir=".") -> None:
    """Write tomogram ``index`` of one simulation section (MRC), its ground truth (STAR) and,
    optionally, its noise-free density (MRC)."""
    tomo = section.get("tomograms", {})
    structures = structures_from_section(section, base_dir)
    imaging = imaging_from_section(section)
    seed = int(section.get("seed", 0))
    box = int(section.get("box_vox", 24))
    result = simulate_tomogram(
        structures, imaging, shape_xyz_vox=tomo.get("shape_xyz_vox", [256, 256, 128]),
        particles_per_class=int(tomo.get("particles_per_class", 20)), vesicles=int(tomo.get("vesicles", 1)),
        blobs=int(tomo.get("blobs", 20)), box_vox=box,
        noise_var=noise_variance(structures, imaging, box, seed),  # same noise level as the subtomogram set
        seed=[seed, 1000 + index], name=tomogram_name(index),
    )
    write_volume(out_mrc, result.tomogram, imaging.voxel_size_A)
    if out_clean:
        write_volume(out_clean, result.clean, imaging.voxel_size_A)
    write_star(out_star, result.particles)
    log.info("wrote %s with %d particles", out_mrc, len(result.particles))
