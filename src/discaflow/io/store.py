"""The HDF5 subtomogram store: one file per dataset, shared by simulation, extraction, DISCA and prediction.

Layout (format ``discaflow-subtomograms``, version 1)::

    /subtomograms   (N, b, b, b)  float16 (default) or float32, indexed [n, z, y, x]; one chunk per
                                  subtomogram, gzip + shuffle; each subtomogram normalised to zero
                                  mean and unit variance when attrs["normalized"] is true
    /coords         (N, 3)        float32, particle centre (x, y, z) in voxels of the *source
                                  tomogram before binning*, 0-based (voxel i spans i-0.5 .. i+0.5);
                                  NaN for subtomograms that were simulated on their own
    /tomogram       (N,)          int32 index into attrs["tomogram_names"]; -1 when none
    /score          (N,)          float32 picking score (DoG peak value); NaN when none
    /label          (N,)          int32 ground-truth class 0..K-1 (simulated data only)
    /euler_deg      (N, 3)        float32 ground-truth rotation, ZYZ (rot, tilt, psi) in degrees
    /shift_vox      (N, 3)        float32 ground-truth shift (x, y, z) of the particle from the box
                                  centre, in voxels of the store

    attrs: format, format_version, voxel_size_A (of the subtomograms), box_vox, binning,
           normalized, software_version, tomogram_names (JSON list), class_names (JSON list),
           source_files (JSON list of {"name", "size_bytes"}), metadata (JSON object).

Readers never load everything: :meth:`SubtomogramStore.read` and :meth:`iter_batches` read slices.
Writers write to a temporary name and rename on :meth:`StoreWriter.close`, so an interrupted write
never leaves a store that looks complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from discaflow import __version__
from discaflow.errors import InputError

FORMAT = "discaflow-subtomograms"
FORMAT_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32}
_OPTIONAL = {"label": np.int32, "euler_deg": np.float32, "shift_vox": np.float32}


def normalize_subtomograms(batch: np.ndarray) -> np.ndarray:
    """Return each subtomogram of ``batch`` (n, b, b, b) with zero mean and unit variance (float32).

    A constant subtomogram (variance 0) becomes all zeros rather than NaN.
    """
    x = np.asarray(batch, dtype=np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    std[std < 1e-12] = np.inf
    return ((x - mean) / std).astype(np.float32)


class StoreWriter:
    """Write a subtomogram store batch by batch; the file appears under its name only on close().

    Parameters
    ----------
    path: the final store path (``.h5``).
    box_vox: subtomogram edge length in voxels.
    voxel_size_A: voxel size of the subtomograms in Å.
    dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
    binning: binning factor between the source tomograms and the subtomograms.
    normalize: normalise each subtomogram to zero mean and unit variance on append.
    input_normalized: the batches given are normalised already (e.g. copied from another store).
    compression: ``"gzip"`` (readable by any HDF5 tool) or ``"lzf"`` (faster, h5py only).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        box_vox: int,
        voxel_size_A: float,
        dtype: str = "float16",
        binning: float = 1.0,
        normalize: bool = True,
        input_normalized: bool = False,
        compression: str = "gzip",
        tomogram_names: Sequence[str] = (),
        class_names: Sequence[str] = (),
        source_files: Sequence[str | os.PathLike | dict] = (),
        metadata: dict | None = None,
    ):
        if dtype not in _DTYPES:
            raise ValueError(f"store dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if box_vox < 1 or voxel_size_A <= 0:
            raise ValueError("box_vox must be >= 1 and voxel_size_A > 0")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.name}.partial")
        self.box_vox = int(box_vox)
        self.normalize = normalize
        self.n = 0
        self._file = h5py.File(self.tmp_path, "w")
        b = self.box_vox
        comp = {"compression": "gzip", "compression_opts": 4} if compression == "gzip" else {"compression": compression}
        self._file.create_dataset(
            "subtomograms", shape=(0, b, b, b), maxshape=(None, b, b, b), dtype=_DTYPES[dtype],
            chunks=(1, b, b, b), shuffle=True, **comp,
        )
        self._file.create_dataset("coords", shape=(0, 3), maxshape=(None, 3), dtype=np.float32, chunks=(4096, 3))
        self._file.create_dataset("tomogram", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(4096,))
        self._file.create_dataset("score", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(4096,))
        a = self._file.attrs
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["voxel_size_A"] = float(voxel_size_A)
        a["box_vox"] = b
        a["binning"] = float(binning)
        a["normalized"] = bool(normalize or input_normalized)
        a["software_version"] = __version__
        a["tomogram_names"] = json.dumps(list(tomogram_names))
        a["class_names"] = json.dumps(list(class_names))
        files = [f if isinstance(f, dict) else {"name": Path(f).name, "size_bytes": Path(f).stat().st_size}
                 for f in source_files]
        a["source_files"] = json.dumps(files)
        a["metadata"] = json.dumps(metadata or {})

    def append(
        self,
        subtomograms: np.ndarray,
        coords: np.ndarray | None = None,
        tomogram: np.ndarray | int | None = None,
        score: np.ndarray | None = None,
        **ground_truth: np.ndarray,
    ) -> None:
        """Append a batch (n, b, b, b) with its per-subtomogram columns (see the module docstring)."""
        x = np.asarray(subtomograms)
        b = self.box_vox
        if x.ndim != 4 or x.shape[1:] != (b, b, b):
            raise ValueError(f"expected a batch of shape (n, {b}, {b}, {b}), got {x.shape}")
        n = x.shape[0]
        if self.normalize:
            x = normalize_subtomograms(x)
        cols = {
            "subtomograms": x,
            "coords": np.full((n, 3), np.nan, np.float32) if coords is None else np.asarray(coords, np.float32).reshape(n, 3),
            "tomogram": np.full(n, -1, np.int32) if tomogram is None else np.broadcast_to(np.asarray(tomogram, np.int32), (n,)),
            "score": np.full(n, np.nan, np.float32) if score is None else np.asarray(score, np.float32).reshape(n),
        }
        for name, value in ground_truth.items():
            if name not in _OPTIONAL:
                raise ValueError(f"unknown store column {name!r}; known: {sorted(_OPTIONAL)}")
            value = np.asarray(value, _OPTIONAL[name])
            if name not in self._file:
                if self.n:
                    raise ValueError(f"column {name!r} must be given from the first batch on")
                shape = value.shape[1:]
                self._file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=_OPTIONAL[name], chunks=(4096, *shape))
            cols[name] = value.reshape((n, *self._file[name].shape[1:]))
        for name in self._file:
            if name not in cols:
                raise ValueError(f"column {name!r} missing from this batch")
        for name, value in cols.items():
            ds = self._file[name]
            ds.resize(self.n + n, axis=0)
            ds[self.n : self.n + n] = value
        self.n += n

    def set_metadata(self, **entries) -> None:
        """Merge ``entries`` into the JSON ``metadata`` attribute."""
        meta = json.loads(self._file.attrs["metadata"])
        meta.update(entries)
        self._file.attrs["metadata"] = json.dumps(meta)

    def close(self) -> Path:
        """Finish the file and move it onto its final name; returns the path."""
        self._file.attrs["n_subtomograms"] = self.n
        self._file.close()
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        try:
            self._file.close()
        finally:
            if self.tmp_path.exists():
                self.tmp_path.unlink()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SubtomogramStore:
    """Read a subtomogram store in slices; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: subtomogram store not found; run the extraction (or simulation) first")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError:
            raise InputError(f"{self.path}: not a readable HDF5 file; delete it and rerun the step that writes it") from None
        a = self._file.attrs
        if a.get("format") != FORMAT or "subtomograms" not in self._file:
            self._file.close()
            raise InputError(f"{self.path}: not a discaflow subtomogram store; write it with discaflow extract or simulate")
        if int(a["format_version"]) > FORMAT_VERSION:
            self._file.close()
            raise InputError(f"{self.path}: store format version {a['format_version']} is newer than this discaflow; upgrade discaflow")
        self.voxel_size_A = float(a["voxel_size_A"])
        self.box_vox = int(a["box_vox"])
        self.binning = float(a["binning"])
        self.normalized = bool(a["normalized"])
        self.tomogram_names = json.loads(a["tomogram_names"])
        self.class_names = json.loads(a["class_names"])
        self.source_files = json.loads(a["source_files"])
        self.metadata = json.loads(a["metadata"])

    def __len__(self) -> int:
        return int(self._file["subtomograms"].shape[0])

    def fingerprint(self) -> str:
        """A checksum of the store's content that changes when it is re-extracted and not when it is
        copied or touched: its attributes, shape, per-particle columns and first and last subtomogram."""
        import hashlib

        h = hashlib.sha256()
        for k in sorted(self._file.attrs):
            h.update(f"{k}={self._file.attrs[k]!r};".encode())
        h.update(repr((self._file["subtomograms"].shape, str(self.dtype))).encode())
        for name in ("coords", "tomogram", "score", "label"):
            if name in self._file:
                h.update(np.ascontiguousarray(self._file[name][()]).tobytes())
        if len(self):
            h.update(np.ascontiguousarray(self._file["subtomograms"][[0, len(self) - 1] if len(self) > 1 else [0]]).tobytes())
        return h.hexdigest()

    @property
    def dtype(self) -> np.dtype:
        return self._file["subtomograms"].dtype

    def read(self, start: int = 0, stop: int | None = None, *, finite: bool = False) -> np.ndarray:
        """Subtomograms ``start:stop`` as float32 (n, b, b, b); with ``finite``, NaN or Inf is an InputError."""
        x = np.asarray(self._file["subtomograms"][start:stop], dtype=np.float32)
        return self._checked(x, range(start, start + len(x))) if finite else x

    def take(self, indices: Sequence[int], *, finite: bool = False) -> np.ndarray:
        """Subtomograms at arbitrary ``indices`` (any order, repeats allowed) as float32; ``finite`` as read."""
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        uniq, inverse = np.unique(idx[order], return_inverse=True)
        data = np.asarray(self._file["subtomograms"][uniq], dtype=np.float32)
        out = np.empty((len(idx), *data.shape[1:]), np.float32)
        out[order] = data[inverse]
        return self._checked(out, idx) if finite else out

    def _checked(self, x: np.ndarray, indices) -> np.ndarray:
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if bad.any():
            raise InputError(f"{self.path}: NaN or Inf in subtomogram {int(np.asarray(indices)[bad][0])}; re-extract the dataset")
        return x

    def iter_batches(self, batch_size: int = 256) -> Iterator[np.ndarray]:
        """Yield consecutive float32 batches of at most ``batch_size`` subtomograms."""
        for start in range(0, len(self), batch_size):
            yield self.read(start, start + batch_size)

    def column(self, name: str) -> np.ndarray | None:
        """A per-subtomogram column (coords, tomogram, score, label, euler_deg, shift_vox) or None."""
        return np.asarray(self._file[name]) if name in self._file else None

    @property
    def has_labels(self) -> bool:
        return "label" in self._file

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SubtomogramStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
