"""Reading large MRC tomograms slab by slab with bounded memory.

A z-slab of a ``[z, y, x]`` MRC is one contiguous byte range, read with ``np.fromfile`` into a
fresh buffer. Unlike slicing a memory map, this does not leave the file's pages resident in the
process (a memory-mapped read of a 24 GB tomogram shows up as 24 GB of RSS), so peak memory is set
by the slab size, not the tomogram.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile.utils
import numpy as np

from discaflow.errors import InputError
from discaflow.io.mrc import open_volume_mmap


class SlabReader:
    """Checked, slab-wise access to an MRC volume; rows are returned as float32.

    Attributes: ``shape`` (z, y, x), ``voxel_size_A`` (header value; 0.0 when unset), ``path``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open_volume_mmap(self.path) as mrc:  # validates header, mode and file size
            header = mrc.header
            self.shape = tuple(int(s) for s in mrc.data.shape)
            self.voxel_size_A = float(mrc.voxel_size.x)
            self._dtype = mrcfile.utils.data_dtype_from_header(header)
            self._offset = 1024 + int(header.nsymbt)
        if len(self.shape) != 3:
            raise InputError(f"{self.path}: expected a 3-D volume, found shape {self.shape}")
        self._row_items = self.shape[1] * self.shape[2]

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def read_rows(self, z0: int, z1: int, check_finite: bool = True) -> np.ndarray:
        """Rows ``z0:z1`` (clipped to the volume) as a float32 array (n, y, x)."""
        z0, z1 = max(0, z0), min(self.shape[0], z1)
        n = max(0, z1 - z0)
        with open(self.path, "rb") as fh:
            data = np.fromfile(fh, dtype=self._dtype, count=n * self._row_items,
                               offset=self._offset + z0 * self._row_items * self._dtype.itemsize)
        if data.size != n * self._row_items:
            raise InputError(f"{self.path}: file ends early (truncated?); copy or export the tomogram again")
        rows = data.reshape(n, self.shape[1], self.shape[2]).astype(np.float32, copy=False)
        if check_finite and not np.isfinite(rows).all():
            raise InputError(f"{self.path}: NaN or Inf voxels in z rows {z0}-{z1 - 1}; fix or mask the tomogram before picking")
        return rows


def block_average(rows: np.ndarray, factor: int) -> np.ndarray:
    """Bin (n, y, x) rows by ``factor`` in every axis (mean over factor³ blocks; partial blocks dropped)."""
    if factor == 1:
        return rows
    n, ny, nx = (s // factor for s in rows.shape)
    r = rows[: n * factor, : ny * factor, : nx * factor]
    return r.reshape(n, factor, ny, factor, nx, factor).mean(axis=(1, 3, 5), dtype=np.float32)


def binned_shape(shape, factor: int):
    return tuple(s // factor for s in shape)


def read_binned_rows(reader: SlabReader, zb0: int, zb1: int, factor: int) -> np.ndarray:
    """Binned rows ``zb0:zb1`` (clipped to the binned volume) as float32.

    Unbinned data are read ``factor`` rows at a time, so the transient buffer is ``factor`` full
    planes, whatever the number of rows asked for.
    """
    nzb, nyb, nxb = binned_shape(reader.shape, factor)
    zb0, zb1 = max(0, zb0), min(nzb, zb1)
    if factor == 1:
        return reader.read_rows(zb0, zb1)
    out = np.empty((zb1 - zb0, nyb, nxb), np.float32)
    for i, zb in enumerate(range(zb0, zb1)):
        out[i] = block_average(reader.read_rows(zb * factor, (zb + 1) * factor), factor)[0]
    return out


class BinnedRowCache:
    """Binned rows of a tomogram for requests whose start never decreases (particles sorted by z).

    Every binned row is read once; rows below the latest request's start are dropped, so memory
    holds about one box height of binned rows.
    """

    def __init__(self, reader: SlabReader, factor: int, chunk_rows: int = 8):
        self.reader, self.factor, self.chunk = reader, factor, chunk_rows
        self.lo = 0
        self.rows = np.zeros((0, *binned_shape(reader.shape, factor)[1:]), np.float32)

    def get(self, z0: int, z1: int) -> np.ndarray:
        """Binned rows ``z0:z1`` (0 <= z0 <= z1 <= binned depth); ``z0`` must not decrease."""
        if z0 < self.lo:
            raise ValueError("BinnedRowCache requests must not move backwards in z")
        drop = min(z0 - self.lo, len(self.rows))
        self.rows, self.lo = self.rows[drop:], self.lo + drop
        if self.lo < z0:  # the request skipped rows never read
            self.rows, self.lo = self.rows[:0], z0
        hi = self.lo + len(self.rows)
        if z1 > hi:
            new = read_binned_rows(self.reader, hi, max(z1, hi + self.chunk), self.factor)
            self.rows = np.concatenate([self.rows, new]) if len(self.rows) else new
        return self.rows[z0 - self.lo: z1 - self.lo]
