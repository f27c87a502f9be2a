"""The imaging model: tilt-series sampling (missing wedge), CTF and noise, in Fourier space.

What is modelled. A tilt series about the y axis (beam along z at 0°) from ``tilt_min_deg`` to
``tilt_max_deg`` in steps of ``tilt_step_deg``. By the Fourier-slice theorem the weighted
back-projection (exact weighting) of the series holds, at each Fourier component k, the value of the
tilt image whose central slice passes through k: k is *measured* when it lies within the slab of
some tilt, ``|k · d_θ| ≤ 1 / (2 L)`` with d_θ the beam direction at tilt θ and L the particle box
edge in Å (Crowther's criterion: a particle of size L is sampled continuously below
k ≈ 1/(L Δθ)); unmeasured components (the missing wedge, Crowther gaps, and beyond Nyquist) are 0.
Each measured component is multiplied by the CTF of its tilt image at its in-plane frequency ≈ |k|
(the defocus gradient across tilted images is not modelled). Noise is white Gaussian noise added
to every tilt image *before* the CTF, as in the DISCA paper's simulator, so the missing wedge and
the CTF are in both signal and noise.

SNR is signal variance / noise variance, with one noise level for a whole dataset (as in a real
tomogram, big and small complexes differ in signal, not in noise). Two conventions say where it holds
(``Imaging.snr_convention``):

``final_volume``
    In the reconstructed subtomogram, full band: the variance of the imaged, noise-free particle in a
    box of ``box_vox`` voxels (mean over the dataset's structures and random orientations) divided by
    the variance of the imaged noise. Noise is white before the CTF and wedge, so white to Nyquist
    within the measured region.
``paper``
    The recipe of the DISCA paper's simulator (its refs. 50–51), re-implemented from its description.
    The nominal SNR sets the noise *before* the CTF: noise of variance signal / SNR (signal = the
    CTF- and wedge-filtered particle's variance, rescaled by the filter's gain on white noise), half of
    it white (then through the CTF) and half a heavily low-passed "MTF" noise (a soft Fourier sphere of
    1 shell with a Gaussian fall-off of 0.2 × box shells). Signal and noise are then band-passed to
    ``band_threshold_shells`` (a quarter of the box's Nyquist shells scaled by the pixel size in nm:
    ⌊box × pixel_nm / 4⌋, soft edge 2 shells; the particle is band-passed once more before the noise
    is added) and the wedge is applied. The final volume then holds more SNR than the nominal figure
    (about 5× at 1 nm pixels, 2× at 1.6 nm; `make bench-simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from discaflow.simulate.ctf import ctf


SNR_CONVENTIONS = ("final_volume", "paper")


@dataclass
class Imaging:
    """Imaging conditions (defaults: the DISCA paper's simulation)."""

    voxel_size_A: float
    snr: float = 0.1
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 2.0
    voltage_kV: float = 300.0
    defocus_um: float = -5.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    bfactor_A2: float = 0.0
    apply_ctf: bool = True
    snr_convention: str = "final_volume"  # or "paper": see the module docstring

    def __post_init__(self):
        if self.snr_convention not in SNR_CONVENTIONS:
            raise ValueError(f"snr_convention must be one of {', '.join(SNR_CONVENTIONS)}, got {self.snr_convention!r}")
        if self.voxel_size_A <= 0:
            raise ValueError(f"voxel_size_A must be > 0, got {self.voxel_size_A}")
        if not self.snr > 0:
            raise ValueError(f"snr must be > 0, got {self.snr}")
        if not (-90 < self.tilt_min_deg <= self.tilt_max_deg < 90) or self.tilt_step_deg <= 0:
            raise ValueError("tilt range must satisfy -90 < tilt_min_deg <= tilt_max_deg < 90 and tilt_step_deg > 0")

    @property
    def tilt_angles_deg(self) -> np.ndarray:
        n = int(np.floor((self.tilt_max_deg - self.tilt_min_deg) / self.tilt_step_deg + 1e-9)) + 1
        return self.tilt_min_deg + self.tilt_step_deg * np.arange(n)


def fourier_grid(shape, voxel_size_A):
    """Frequencies (1/Å) ``kz, ky, kx`` of an ``rfftn`` of an array of ``shape`` (z, y, x), broadcastable."""
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz, d=voxel_size_A)[:, None, None]
    ky = np.fft.fftfreq(ny, d=voxel_size_A)[None, :, None]
    kx = np.fft.rfftfreq(nx, d=voxel_size_A)[None, None, :]
    return kz, ky, kx


def transfer_function(shape, imaging: Imaging, object_size_A: float, with_ctf: bool | None = None) -> np.ndarray:
    """The filter ``H`` (rfftn layout) that the tilt series, reconstruction and CTF apply to a volume.

    ``object_size_A`` sets the slab thickness of each tilt in Fourier space (see the module docstring).
    ``with_ctf`` False gives the sampling alone (missing wedge, Crowther gaps, Nyquist); None follows
    ``imaging.apply_ctf``.
    """
    kz, ky, kx = fourier_grid(shape, imaging.voxel_size_A)
    half_thickness = 0.5 / object_size_A
    theta = np.deg2rad(imaging.tilt_angles_deg)
    # Distance of (kx, kz) to the nearest tilt plane; independent of ky (the tilt axis).
    kz2, kx2 = kz[:, 0, :], kx[:, 0, :]
    dist = np.full(np.broadcast_shapes(kz2.shape, kx2.shape), np.inf)
    for t in theta:
        dist = np.minimum(dist, np.abs(kx2 * np.sin(t) + kz2 * np.cos(t)))
    measured = (dist <= half_thickness)[:, None, :]
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    nyquist = 0.5 / imaging.voxel_size_A
    h = (measured & (k <= nyquist)).astype(np.float32)
    if imaging.apply_ctf if with_ctf is None else with_ctf:
        h = h * ctf(k, imaging.voltage_kV, imaging.defocus_um, imaging.cs_mm, imaging.amplitude_contrast, imaging.bfactor_A2).astype(np.float32)
    return h


def band_threshold_shells(box_vox: int, voxel_size_A: float) -> int:
    """The paper convention's band limit in Fourier shells of a ``box_vox`` box: ⌊(box/8) / Nyquist⌋
    with Nyquist = 1 / (2 × pixel in nm), i.e. ⌊box × pixel_nm / 4⌋ (6 for 24³ at 1 nm, 9 at 1.6 nm)."""
    return int(np.floor(box_vox * voxel_size_A / 10.0 / 4.0 + 1e-9))


def soft_sphere(radius_shells: np.ndarray, limit: float, fall_off: float) -> np.ndarray:
    """1 within ``limit`` shells, a Gaussian fall-off of width ``fall_off`` shells beyond, 0 below e⁻³."""
    out = np.exp(-(((radius_shells - limit) / fall_off) ** 2))
    out[out < np.exp(-3.0)] = 0.0
    out[radius_shells <= limit] = 1.0
    return out.astype(np.float32)


@dataclass(frozen=True)
class Filters:
    """What imaging does to a volume (rfftn layout): ``signal`` filters the particle, ``noise`` shapes
    white noise."""

    signal: np.ndarray
    noise: np.ndarray


def imaging_filters(shape, imaging: Imaging, box_vox: int) -> Filters:
    """The signal and noise filters of ``imaging.snr_convention`` on a grid of ``shape`` (z, y, x).

    Frequencies are counted in shells of the ``box_vox`` reference box, so a whole tomogram gets the
    same band limits as its subtomograms.
    """
    object_size_A = box_vox * imaging.voxel_size_A
    h = transfer_function(shape, imaging, object_size_A)
    if imaging.snr_convention == "final_volume":
        return Filters(h, h)
    wedge = transfer_function(shape, imaging, object_size_A, with_ctf=False)
    kz, ky, kx = fourier_grid(shape, imaging.voxel_size_A)
    shells = np.sqrt(kz**2 + ky**2 + kx**2) * object_size_A
    limit = band_threshold_shells(box_vox, imaging.voxel_size_A)
    band = soft_sphere(shells, limit, 2.0)
    mtf = soft_sphere(shells, 1.0, 0.2 * box_vox)
    # signal: band-passed, CTF, band-passed again, wedge; noise: (white through the CTF) + MTF noise,
    # equal variances before filtering, then band-passed and wedge
    return Filters(signal=h * band * band, noise=wedge * band * np.sqrt(h * h + mtf * mtf))


def filter_power(h: np.ndarray, nx: int) -> float:
    """Mean of |H|² over the full (not half) Fourier grid = variance gain for unit white noise."""
    p = np.abs(h) ** 2
    weights = np.full(h.shape[-1], 2.0)
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    return float((p * weights).sum() / (h.shape[0] * h.shape[1] * nx))


def apply_filter(volumes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Filter one volume (z, y, x) or a batch (n, z, y, x) by ``h`` (rfftn layout of one volume)."""
    axes = (-3, -2, -1)
    shape = volumes.shape[-3:]
    return np.fft.irfftn(np.fft.rfftn(volumes, axes=axes) * h, s=shape, axes=axes).astype(np.float32)


def filtered_noise(shape, h: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise passed through ``h``, scaled so its expected variance is ``variance``.

    ``shape`` is (z, y, x) or (n, z, y, x).
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    gain = filter_power(h, shape[-1])
    return apply_filter(white, h) * np.float32(np.sqrt(variance / gain))
