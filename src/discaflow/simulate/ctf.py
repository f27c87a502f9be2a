"""Contrast transfer function of a transmission electron microscope (weak-phase approximation).

Sign convention (as in the DISCA paper's simulator): ``defocus_um < 0`` is underfocus. With
underfocus the CTF is negative at low frequency, so positive (protein) density appears dark, as in
raw cryo-electron tomograms.
"""

from __future__ import annotations

import numpy as np


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    v = voltage_kV * 1e3
    return 12.2643247 / np.sqrt(v * (1.0 + 0.978466e-6 * v))


def _chi(k_per_A, voltage_kV, defocus_um, cs_mm):
    lam = electron_wavelength_A(voltage_kV)
    dz = -defocus_um * 1e4  # Å, > 0 for underfocus
    cs = cs_mm * 1e7  # Å
    k2 = np.asarray(k_per_A, dtype=np.float64) ** 2
    return np.pi * lam * dz * k2 - 0.5 * np.pi * cs * lam**3 * k2**2


def ctf(k_per_A, voltage_kV=300.0, defocus_um=-5.0, cs_mm=2.7, amplitude_contrast=0.07, bfactor_A2=0.0):
    """CTF at spatial frequencies ``k_per_A`` (1/Å): −[√(1−A²) sin χ + A cos χ]·exp(−B k²/4)."""
    chi = _chi(k_per_A, voltage_kV, defocus_um, cs_mm)
    a = amplitude_contrast
    value = -(np.sqrt(1.0 - a * a) * np.sin(chi) + a * np.cos(chi))
    if bfactor_A2:
        value = value * np.exp(-bfactor_A2 * np.asarray(k_per_A, dtype=np.float64) ** 2 / 4.0)
    return value


def ctf_zero_frequencies(n_zeros, voltage_kV=300.0, defocus_um=-5.0, cs_mm=2.7, amplitude_contrast=0.07):
    """The first ``n_zeros`` spatial frequencies (1/Å) where the CTF crosses zero (underfocus only).

    Zeros satisfy χ(k) = nπ − arcsin(A), n = 1, 2, …; χ is quadratic in k², solved exactly.
    """
    if defocus_um >= 0:
        raise ValueError("zero crossings are defined here for underfocus (defocus_um < 0)")
    lam = electron_wavelength_A(voltage_kV)
    dz = -defocus_um * 1e4
    cs = cs_mm * 1e7
    phi = np.arcsin(amplitude_contrast)
    out = []
    for n in range(1, n_zeros + 1):
        target = n * np.pi - phi
        a, b = 0.5 * np.pi * cs * lam**3, np.pi * lam * dz  # a k^4 - b k^2 + target = 0
        disc = b * b - 4 * a * target
        if disc < 0:
            break
        out.append(np.sqrt((b - np.sqrt(disc)) / (2 * a)))
    return np.array(out)
