"""Fourier-space tools for averaging: missing-wedge masks, resolution shells, filters, masks and the
Fourier shell correlation (FSC).

Arrays in ``rfftn`` layout belong to a real cubic volume of edge ``n`` voxels indexed ``[z, y, x]``
(shape ``(n, n, n // 2 + 1)``). Shell ``s`` holds the frequencies ``s − 0.5 ≤ |k| n < s + 0.5``
(cycles per box); shell ``n // 2`` is Nyquist. A shell ``s`` is a resolution of ``n · voxel / s`` Å.
"""

from __future__ import annotations

import numpy as np


def frequency_grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cycles per box) ``kz, ky, kx`` of an ``rfftn`` of an n³ volume, broadcastable."""
    kz = np.fft.fftfreq(n, d=1.0 / n)[:, None, None]
    ky = np.fft.fftfreq(n, d=1.0 / n)[None, :, None]
    kx = np.fft.rfftfreq(n, d=1.0 / n)[None, None, :]
    return kz, ky, kx


def shell_index(n: int) -> np.ndarray:
    """Integer shell of every ``rfftn`` voxel of an n³ volume (rounded |k| in cycles per box)."""
    kz, ky, kx = frequency_grid(n)
    return np.rint(np.sqrt(kz**2 + ky**2 + kx**2)).astype(np.int64)


def rfft_weights(n: int) -> np.ndarray:
    """How many times each ``rfftn`` voxel counts in the full spectrum (1 or 2 along x)."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return np.broadcast_to(w[None, None, :], (n, n, n // 2 + 1))


def wedge_mask(n: int, tilt_min_deg: float | None, tilt_max_deg: float | None) -> np.ndarray:
    """Measured region (1) and missing wedge (0) of a single-axis tilt series, ``rfftn`` layout.

    Tilt axis y, beam along z at 0° (the simulator's and IMOD's convention). A frequency k is
    measured when the plane of some tilt θ in [tilt_min, tilt_max] contains it, i.e. when its
    direction in the x–z plane lies within the tilt range of the x axis. Frequencies on the tilt axis
    (kx = kz = 0) are always measured. ``None`` for either angle: no wedge (all ones).
    """
    kz, ky, kx = frequency_grid(n)
    if tilt_min_deg is None or tilt_max_deg is None:
        return np.ones((n, n, n // 2 + 1), np.float32)
    # tilt θ measures the plane kx sinθ + kz cosθ = 0: the direction angle of (kx, kz) from the kx
    # axis, folded to (−90°, 90°], must equal −θ for some θ in the range.
    angle = np.degrees(np.arctan2(kz, kx))  # kx ≥ 0 in rfft layout, so angle in [−90, 90]
    angle = np.where(angle <= -90, angle + 180, angle)
    measured = (-angle >= tilt_min_deg - 1e-6) & (-angle <= tilt_max_deg + 1e-6)
    on_axis = (kx == 0) & (kz == 0)
    return np.broadcast_to(measured | on_axis, (n, n, n // 2 + 1)).astype(np.float32)


def full_from_rfft(half: np.ndarray) -> np.ndarray:
    """An ``rfftn``-layout real mask (n, n, n//2+1) as the full, centred (fftshifted) n³ array."""
    n = half.shape[0]
    full = np.empty((n, n, n), np.float32)
    full[:, :, : n // 2 + 1] = half
    # Hermitian symmetry: value at (kz, ky, −kx) equals value at (−kz, −ky, kx)
    idx = np.arange(n // 2 + 1, n)
    neg = (-np.arange(n)) % n
    full[:, :, idx] = half[np.ix_(neg, neg, (n - idx) % n)]
    return np.fft.fftshift(full)


def rfft_from_full(full_centred: np.ndarray) -> np.ndarray:
    """Inverse of :func:`full_from_rfft`: the ``rfftn``-layout part of a centred n³ Fourier array."""
    n = full_centred.shape[0]
    return np.ascontiguousarray(np.fft.ifftshift(full_centred)[:, :, : n // 2 + 1])


def lowpass_filter(n: int, cutoff_shell: float, width_shells: float = 2.0, highpass_shell: float = 0.5) -> np.ndarray:
    """A soft band-pass in ``rfftn`` layout: 1 up to ``cutoff_shell``, a raised-cosine fall to 0
    over ``width_shells``, and 0 below ``highpass_shell`` (removes the mean)."""
    kz, ky, kx = frequency_grid(n)
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    f = np.where(k <= cutoff_shell, 1.0,
                 np.where(k >= cutoff_shell + width_shells, 0.0,
                          0.5 * (1 + np.cos(np.pi * (k - cutoff_shell) / max(width_shells, 1e-9)))))
    f[k < highpass_shell] = 0.0
    return f.astype(np.float32)


def centre_radii(n: int) -> np.ndarray:
    """Distance of every voxel of an n³ box from its centre voxel (n // 2), in voxels."""
    g = np.arange(n) - n // 2
    return np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)


def soft_sphere_mask(n: int, radius_vox: float, edge_vox: float = 3.0) -> np.ndarray:
    """A spherical mask around the box centre (voxel n // 2): 1 inside ``radius_vox``, a raised-cosine
    edge ``edge_vox`` wide, 0 outside."""
    r = centre_radii(n)
    m = np.where(r <= radius_vox, 1.0,
                 np.where(r >= radius_vox + edge_vox, 0.0, 0.5 * (1 + np.cos(np.pi * (r - radius_vox) / max(edge_vox, 1e-9)))))
    return m.astype(np.float32)


def fsc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Fourier shell correlation of two n³ volumes, shells 0 … n // 2 (after an optional real-space mask)."""
    if a.shape != b.shape or a.ndim != 3 or len(set(a.shape)) != 1:
        raise ValueError(f"fsc needs two cubic volumes of the same shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if mask is not None:
        a, b = a * mask, b * mask
    fa, fb = np.fft.rfftn(a.astype(np.float64)), np.fft.rfftn(b.astype(np.float64))
    shells, w = shell_index(n).ravel(), rfft_weights(n).ravel()
    nshell = n // 2 + 1
    keep = shells < nshell
    num = np.bincount(shells[keep], (w * np.real(fa * np.conj(fb)).ravel())[keep], nshell)
    pa = np.bincount(shells[keep], (w * np.abs(fa.ravel()) ** 2)[keep], nshell)
    pb = np.bincount(shells[keep], (w * np.abs(fb.ravel()) ** 2)[keep], nshell)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / np.sqrt(pa * pb)
    return np.nan_to_num(out, nan=0.0)


def resolution_at(curve: np.ndarray, threshold: float, voxel_size_A: float, n: int) -> float:
    """Resolution (Å) where an FSC curve first falls below ``threshold`` (linear interpolation
    between shells, shell 0 ignored); Nyquist (2 × voxel) when it never does."""
    for s in range(1, len(curve)):
        if curve[s] < threshold:
            if s == 1:
                return float(n * voxel_size_A)  # no correlation beyond the box scale
            f0, f1 = curve[s - 1], curve[s]
            shell = (s - 1) + (f0 - threshold) / (f0 - f1)
            return float(n * voxel_size_A / shell)
    return float(2 * voxel_size_A)


def shell_resolution_A(n: int, voxel_size_A: float) -> np.ndarray:
    """Resolution (Å) of shells 0 … n // 2 (inf for shell 0)."""
    s = np.arange(n // 2 + 1, dtype=float)
    with np.errstate(divide="ignore"):
        return n * voxel_size_A / s
