"""MRC volumes: checked reading (whole or memory-mapped) and atomic writing.

Arrays are indexed ``[z, y, x]`` as mrcfile returns them. Voxel sizes are in Å.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from discaflow.errors import InputError
from discaflow.io.atomic import atomic_path

_COMPLEX_MODES = {3, 4}


@dataclass
class Volume:
    """A volume and its voxel size (Å; 0.0 when the header has none)."""

    data: np.ndarray
    voxel_size_A: float


def _open(path: Path, mmap: bool):
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path in the configuration")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an MRC file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mmap:
                return mrcfile.mmap(path, mode="r", permissive=False)
            return mrcfile.open(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{path}: not a readable MRC file ({detail}); re-export it as MRC (mode 2, float32)"
        ) from None


def _check_mode(path: Path, mrc) -> None:
    mode = int(mrc.header.mode)
    if mode in _COMPLEX_MODES or np.iscomplexobj(mrc.data):
        raise InputError(
            f"{path}: MRC mode {mode} holds complex (Fourier) data; give the real-space volume "
            "(mode 2, float32)"
        )
    if mrc.data is None or mrc.data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D volume, found shape {getattr(mrc.data, 'shape', None)}")


def read_volume(path: str | os.PathLike, check_finite: bool = True) -> Volume:
    """Read a whole MRC volume as float32 with its voxel size (Å).

    Integer modes are converted to float32. Complex data, NaN/Inf voxels and files that are not
    MRC (or are truncated) raise :class:`InputError` with a one-line message naming the file.
    """
    path = Path(path)
    with _open(path, mmap=False) as mrc:
        _check_mode(path, mrc)
        data = np.asarray(mrc.data, dtype=np.float32).copy()
        voxel_size_A = float(mrc.voxel_size.x)
    if check_finite and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise InputError(f"{path}: {n_bad} voxels are NaN or Inf; fix or mask the volume before use")
    return Volume(data=data, voxel_size_A=voxel_size_A)


def open_volume_mmap(path: str | os.PathLike):
    """Open an MRC volume memory-mapped (read-only) after checking its header and mode.

    Returns the open ``mrcfile`` object; use it as a context manager. Data are not copied, so a
    tomogram of any size can be read slab by slab.
    """
    path = Path(path)
    mrc = _open(path, mmap=True)
    try:
        _check_mode(path, mrc)
    except InputError:
        mrc.close()
        raise
    return mrc


def write_volume(path: str | os.PathLike, data: np.ndarray, voxel_size_A: float) -> None:
    """Write ``data`` (``[z, y, x]``) as an MRC with the voxel size in Å, atomically.

    int8 and int16 arrays (label maps) keep their type (MRC modes 0 and 1); everything else is
    written as float32 (mode 2)."""
    if voxel_size_A <= 0:
        raise ValueError(f"voxel size must be > 0 Å, got {voxel_size_A}")
    arr = np.asarray(data)
    if arr.dtype not in (np.int8, np.int16):
        arr = arr.astype(np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(arr))
            mrc.voxel_size = float(voxel_size_A)
