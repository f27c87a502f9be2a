"""Structures for simulation: density maps (MRC) or atomic models (PDB/mmCIF) at a target voxel size.

Every structure is returned centred on its centre of mass (at box voxel ``n // 2``) and scaled to a
peak density of 1, so that maps from different sources are comparable: protein density is roughly
constant, so bigger complexes carry more signal through their volume, not through higher values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from discaflow.errors import InputError
from discaflow.geometry import box_center
from discaflow.io.mrc import read_volume

MAP_SUFFIXES = {".mrc", ".map", ".mrcs", ".rec", ".ccp4"}
MODEL_SUFFIXES = {".pdb", ".ent", ".cif", ".mmcif"}
# A voxel belongs to the structure when its density is at least this fraction of the peak.
SUPPORT_FRACTION = 0.1


@dataclass
class Structure:
    """A density map ``[z, y, x]`` at ``voxel_size_A``, centred and scaled to unit peak."""

    name: str
    density: np.ndarray
    voxel_size_A: float
    source: str

    @property
    def radius_vox(self) -> float:
        """Largest distance (voxels) from the box centre of a voxel above 10 % of the peak."""
        return support_radius_vox(self.density)

    @property
    def mass(self) -> float:
        """Integrated positive density (arbitrary units, proportional to molecular mass)."""
        return float(np.clip(self.density, 0, None).sum()) * self.voxel_size_A**3


def support_radius_vox(density: np.ndarray) -> float:
    """Largest distance (voxels) from the box centre of a voxel above ``SUPPORT_FRACTION`` of the peak."""
    peak = density.max()
    if peak <= 0:
        return 0.0
    idx = np.argwhere(density >= SUPPORT_FRACTION * peak)
    return float(np.sqrt(((idx - box_center(density.shape)) ** 2).sum(axis=1)).max())


def resample_centered(density: np.ndarray, voxel_in_A: float, voxel_out_A: float, box_out: int | None = None) -> np.ndarray:
    """Resample ``density`` to ``voxel_out_A`` with its centre of mass at the output box centre.

    Downsampling first applies a Gaussian anti-aliasing filter (σ = 0.5·ratio input voxels).
    Interpolation is cubic B-spline. The output box is cubic with ``box_out`` voxels
    (default: the input's physical size at the new voxel size).
    """
    ratio = voxel_out_A / voxel_in_A
    src = np.asarray(density, dtype=np.float64)
    if ratio > 1:
        src = ndimage.gaussian_filter(src, sigma=0.5 * ratio, mode="constant")
    pos = np.clip(src, 0, None)
    if pos.sum() <= 0:
        raise ValueError("structure has no positive density")
    com_zyx = np.array(ndimage.center_of_mass(pos))
    if box_out is None:
        box_out = int(np.ceil(max(density.shape) / ratio))
    out_center = box_center((box_out,) * 3)
    # output index o -> input index i = com + ratio * (o - c_out)
    out = ndimage.affine_transform(
        src, np.eye(3) * ratio, offset=com_zyx - ratio * out_center, output_shape=(box_out,) * 3,
        order=3, mode="constant", cval=0.0,
    )
    return out.astype(np.float32)


def _density_from_model(path: Path, voxel_size_A: float, assembly: bool) -> np.ndarray:
    import gemmi

    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable PDB/mmCIF model ({str(exc).splitlines()[0]}); check the file") from None
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise InputError(f"{path}: the model has no atoms; check the file")
    st.setup_entities()
    st.remove_hydrogens()
    st.remove_waters()
    model = st[0]
    if assembly and st.assemblies:
        model = gemmi.make_assembly(st.assemblies[0], model, gemmi.HowToNameCopiedChain.AddNumber)
    xyz = np.array([a.pos.tolist() for ch in model for res in ch for a in res])
    center = xyz.mean(axis=0)
    radius = np.sqrt(((xyz - center) ** 2).sum(axis=1)).max()
    # Grid at the target spacing, padded so the periodic cell never wraps density onto itself.
    n = int(np.ceil((2 * radius + 8 * voxel_size_A) / voxel_size_A))
    n += n % 2
    length = n * voxel_size_A
    shift = gemmi.Position(*(length / 2 - center))
    for ch in model:
        for res in ch:
            for a in res:
                a.pos = a.pos + shift
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 2.0 * voxel_size_A  # Nyquist of the target grid
    dc.grid.set_unit_cell(gemmi.UnitCell(length, length, length, 90, 90, 90))
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    dc.grid.set_size(n, n, n)
    dc.set_refmac_compatible_blur(model)
    dc.add_model_density_to_grid(model)
    # gemmi's grid is indexed [x, y, z]; discaflow uses [z, y, x].
    return np.array(dc.grid.array, dtype=np.float32).transpose(2, 1, 0)


def load_structure(
    path: str | os.PathLike,
    voxel_size_A: float,
    name: str | None = None,
    assembly: bool = True,
    map_voxel_size_A: float | None = None,
) -> Structure:
    """Load a density map or atomic model as a :class:`Structure` at ``voxel_size_A`` (Å).

    Maps take their voxel size from the header unless ``map_voxel_size_A`` is given. Atomic models
    are turned into density with gemmi's electron scattering factors at resolution 2·voxel size; with
    ``assembly`` the first biological assembly (e.g. PDB BIOMT records) is built first.
    """
    path = Path(path)
    name = name or path.stem
    if voxel_size_A is None or voxel_size_A <= 0:
        raise InputError(f"voxel size must be > 0 Å, got {voxel_size_A}; set voxel_size_A in the configuration")
    if not path.exists():
        raise InputError(f"{path}: structure file not found; check the path in the configuration")
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        dens = _density_from_model(path, voxel_size_A, assembly)
        density = resample_centered(dens, voxel_size_A, voxel_size_A)
    elif suffix in MAP_SUFFIXES:
        vol = read_volume(path)
        vs_in = map_voxel_size_A or vol.voxel_size_A
        if vs_in <= 0:
            raise InputError(f"{path}: the header has no voxel size; give it in the configuration (map_voxel_size_A)")
        if vol.data.max() <= 0:
            raise InputError(f"{path}: the map has no positive density; invert it (protein must be positive)")
        density = resample_centered(vol.data, vs_in, voxel_size_A)
    else:
        raise InputError(
            f"{path}: unknown structure file type {suffix!r}; use a map ({', '.join(sorted(MAP_SUFFIXES))}) "
            f"or an atomic model ({', '.join(sorted(MODEL_SUFFIXES))})"
        )
    peak = float(density.max())
    if not np.isfinite(peak) or peak <= 0:
        raise InputError(f"{path}: the structure has no positive density after resampling; check the file")
    return Structure(name=name, density=density / peak, voxel_size_A=float(voxel_size_A), source=str(path))
