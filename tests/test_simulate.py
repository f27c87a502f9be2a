"""The simulator: SNR, missing wedge, CTF, ground truth, determinism, atomic models."""

import numpy as np
import pytest

from discaflow.io.store import SubtomogramStore
from discaflow.simulate.ctf import ctf, ctf_zero_frequencies
from discaflow.simulate.imaging import Imaging, fourier_grid, transfer_function
from discaflow.simulate.structures import load_structure
from discaflow.simulate.subtomograms import simulate_subtomograms
from discaflow.simulate.tomograms import simulate_tomogram

from conftest import DATA, SHARED, STRUCTURES


def _store_arrays(path):
    with SubtomogramStore(path) as s:
        return s.read(), s.column("label")


@pytest.mark.parametrize("snr", [0.1, 1.0])
def test_measured_snr_matches_target(tmp_path, demo_structures, snr):
    """Two noise realisations of the same particles: SNR = rho / (1 - rho) (Frank & Al-Ali)."""
    imaging = Imaging(16.0, snr=snr)
    for noise_seed in (1, 2):
        simulate_subtomograms(demo_structures, tmp_path / f"n{noise_seed}.h5", imaging, per_class=60,
                              seed=3, noise_seed=noise_seed, dtype="float32", progress=False)
    a, _ = _store_arrays(tmp_path / "n1.h5")
    b, _ = _store_arrays(tmp_path / "n2.h5")
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    rho = (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())
    measured = rho / (1 - rho)
    assert abs(measured - snr) / snr < 0.15, (measured, snr)


def _wedge_fraction(volumes, voxel_size_A, tilt_max_deg, margin_deg=5.0, kmin_vox=3):
    """Power inside the missing wedge / power outside it (DC and the lowest shells excluded)."""
    shape = volumes.shape[-3:]
    kz, ky, kx = fourier_grid(shape, 1.0)
    kz, ky, kx = np.broadcast_arrays(kz * shape[0], ky * shape[1], kx * shape[2])
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))  # 0 deg: in the untilted plane; 90: beam axis
    radius = np.sqrt(kz**2 + ky**2 + kx**2)
    power = (np.abs(np.fft.rfftn(volumes, axes=(-3, -2, -1))) ** 2).reshape(-1, *angle.shape).sum(0)
    valid = radius >= kmin_vox
    inside = valid & (angle > tilt_max_deg + margin_deg)
    outside = valid & (angle < tilt_max_deg - margin_deg)
    return power[inside].sum() / power[outside].sum(), power[outside].mean()


@pytest.mark.parametrize("tilt_max", [60.0, 40.0])
def test_missing_wedge_power_below_one_percent(tmp_path, demo_structures, tilt_max):
    imaging = Imaging(16.0, snr=0.1, tilt_min_deg=-tilt_max, tilt_max_deg=tilt_max)
    simulate_subtomograms(demo_structures, tmp_path / "s.h5", imaging, per_class=10, dtype="float32", progress=False)
    vols, _ = _store_arrays(tmp_path / "s.h5")
    frac, power_out = _wedge_fraction(vols, 16.0, tilt_max)
    assert frac < 0.01
    assert power_out > 0
    # And the wedge is where the geometry puts it: rotate the volumes so the beam lies along x
    # instead of z and the "wedge" region holds most of the power.
    frac_swapped, _ = _wedge_fraction(np.swapaxes(vols, 1, 3), 16.0, tilt_max)
    assert frac_swapped > 0.2


def test_missing_wedge_in_whole_tomogram(demo_structures):
    imaging = Imaging(16.0, snr=0.1)
    res = simulate_tomogram(demo_structures, imaging, shape_xyz_vox=(96, 96, 48), particles_per_class=2, blobs=3, seed=1)
    frac, _ = _wedge_fraction(res.tomogram[None], 16.0, 60.0)
    assert frac < 0.01


def test_ctf_zero_crossings_in_simulated_power_spectrum(tmp_path):
    """The radial power spectrum of simulated subtomograms has its minima at the CTF formula's zeros."""
    s = load_structure(DATA / "1s3x.mrc", 8.0)
    imaging = Imaging(8.0, snr=0.01)
    simulate_subtomograms([s], tmp_path / "c.h5", imaging, per_class=20, box_vox=64, dtype="float32", progress=False)
    vols, _ = _store_arrays(tmp_path / "c.h5")
    power = (np.abs(np.fft.rfftn(vols, axes=(1, 2, 3))) ** 2).sum(0)
    kz, ky, kx = fourier_grid(vols.shape[1:], 8.0)
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    h = transfer_function(vols.shape[1:], Imaging(8.0, snr=0.01, apply_ctf=False), object_size_A=64 * 8.0) > 0
    shell = np.rint(k * 64 * 8.0).astype(int)  # Fourier shells of width 1/(64 * 8 Å)
    radial = np.bincount(shell[h], weights=power[h]) / np.maximum(np.bincount(shell[h]), 1)
    zeros = ctf_zero_frequencies(4)
    zeros = zeros[zeros < 0.5 / 8.0 * 0.95]
    assert len(zeros) >= 2
    for kz0 in zeros:
        s0 = kz0 * 64 * 8.0
        lo, hi = int(np.floor(s0)) - 2, int(np.ceil(s0)) + 3
        local_min = lo + int(np.argmin(radial[lo:hi]))
        assert abs(local_min - s0) <= 1.0, (kz0, local_min, s0)
        # a real minimum: far below the maxima between zeros
        assert radial[local_min] < 0.1 * radial[lo:hi].max()


def test_ctf_sign_and_formula():
    k = np.array([0.0, 0.002])
    values = ctf(k, defocus_um=-5.0)
    assert values[0] == pytest.approx(-0.07)  # amplitude contrast only at k = 0
    assert values[1] < -0.07  # underfocus: protein dark at low frequency
    zeros = ctf_zero_frequencies(3)
    assert np.allclose(ctf(zeros), 0, atol=1e-9)


def test_ground_truth_positions_are_density_centres(demo_structures):
    from scipy import ndimage

    imaging = Imaging(16.0, snr=0.1)
    res = simulate_tomogram(demo_structures, imaging, shape_xyz_vox=(112, 96, 64), particles_per_class=3,
                            vesicles=0, blobs=0, seed=5)
    table = res.particles
    assert len(table) == 9
    zz, yy, xx = np.indices(res.clean.shape)
    for _, row in table.iterrows():
        p = np.array([row.rlnCoordinateZ, row.rlnCoordinateY, row.rlnCoordinateX])
        k = int(row.rlnClassNumber) - 1
        r = demo_structures[k].radius_vox + 2
        mask = (zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2 <= r * r
        com = np.array(ndimage.center_of_mass(np.clip(res.clean, 0, None) * mask))
        assert np.linalg.norm(com - p) < 0.5, (row.dfClassName, com, p)
    # the Å columns are the voxel columns times the voxel size
    assert np.allclose(table.dfCoordinateXAngst, table.rlnCoordinateX * 16.0)


def test_particles_do_not_overlap(demo_structures):
    res = simulate_tomogram(demo_structures, Imaging(16.0), shape_xyz_vox=(128, 128, 64), particles_per_class=5, seed=2)
    xyz = res.particles[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()
    radii = np.array([demo_structures[k - 1].radius_vox for k in res.particles.rlnClassNumber])
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert np.all(d >= radii[:, None] + radii[None] + 1.0)


def test_same_seed_same_output(tmp_path, demo_structures):
    imaging = Imaging(16.0, snr=0.05)
    for name in ("a", "b"):
        simulate_subtomograms(demo_structures, tmp_path / f"{name}.h5", imaging, per_class=4, seed=11, progress=False)
    simulate_subtomograms(demo_structures, tmp_path / "c.h5", imaging, per_class=4, seed=12, progress=False)
    a, la = _store_arrays(tmp_path / "a.h5")
    b, lb = _store_arrays(tmp_path / "b.h5")
    c, _ = _store_arrays(tmp_path / "c.h5")
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)
    t1 = simulate_tomogram(demo_structures, imaging, shape_xyz_vox=(64, 64, 48), particles_per_class=1, seed=[4, 1])
    t2 = simulate_tomogram(demo_structures, imaging, shape_xyz_vox=(64, 64, 48), particles_per_class=1, seed=[4, 1])
    assert np.array_equal(t1.tomogram, t2.tomogram)
    assert t1.particles.equals(t2.particles)


def test_store_holds_ground_truth(tmp_path, demo_structures):
    from discaflow.geometry import rotation_from_euler_zyz_deg

    simulate_subtomograms(demo_structures, tmp_path / "s.h5", Imaging(16.0), per_class=5, progress=False)
    with SubtomogramStore(tmp_path / "s.h5") as s:
        assert len(s) == 15 and s.class_names == ["4v4r", "3j9i", "1bxn"]
        assert np.bincount(s.column("label")).tolist() == [5, 5, 5]
        x = s.read()
        assert np.allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-2) and np.allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-2)
        rot = rotation_from_euler_zyz_deg(s.column("euler_deg"))
        assert np.allclose(np.linalg.det(rot.as_matrix()), 1.0)
        assert np.all(np.linalg.norm(s.column("shift_vox"), axis=1) <= 1.0 + 1e-6)
        assert s.metadata["simulation"]["imaging"]["snr"] == 0.1


def _corr(a, b):
    n = min(a.shape[0], b.shape[0])

    def crop(v):
        c = v.shape[0] // 2
        return v[c - n // 2 : c - n // 2 + n, c - n // 2 : c - n // 2 + n, c - n // 2 : c - n // 2 + n]

    return np.corrcoef(crop(a).ravel(), crop(b).ravel())[0, 1]


@pytest.mark.parametrize("entry", ["1bxn", "1s3x"])
def test_atomic_model_density_matches_polnet_map(entry):
    """PDB -> density at 5 Å, resampled to 10 Å, against PolNet's 10 Å map of the same entry."""
    from discaflow.simulate.structures import resample_centered

    model = load_structure(DATA / f"{entry}.pdb", 5.0, assembly=False)
    resampled = resample_centered(model.density, 5.0, 10.0)
    ref_path = DATA / f"{entry}.mrc" if (DATA / f"{entry}.mrc").exists() else STRUCTURES / f"{entry}.mrc"
    reference = load_structure(ref_path, 10.0)
    assert _corr(resampled, reference.density) >= 0.8


def test_assembly_builds_the_biological_unit():
    half = load_structure(DATA / "1bxn.pdb", 10.0, assembly=False)
    full = load_structure(DATA / "1bxn.pdb", 10.0, assembly=True)
    assert full.mass / half.mass == pytest.approx(2.0, rel=0.05)


@pytest.mark.skipif(not (SHARED / "polnet" / "pdbs" / "3j9i.pdb").exists(), reason="../shared/data/polnet absent")
def test_large_complex_model_matches_polnet_map():
    model = load_structure(SHARED / "polnet" / "pdbs" / "3j9i.pdb", 10.0, assembly=False)
    reference = load_structure(SHARED / "polnet" / "maps_10A" / "3j9i.mrc", 10.0)
    assert _corr(model.density, reference.density) >= 0.8


def _two_realisation_snr(tmp_path, structures, imaging, per_class=60):
    for noise_seed in (1, 2):
        simulate_subtomograms(structures, tmp_path / f"n{noise_seed}.h5", imaging, per_class=per_class,
                              seed=3, noise_seed=noise_seed, dtype="float32", progress=False)
    a, b = (_store_arrays(tmp_path / f"n{i}.h5")[0] for i in (1, 2))
    a, b = (x.reshape(len(x), -1) - x.reshape(len(x), -1).mean(1, keepdims=True) for x in (a, b))
    rho = (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())
    return rho / (1 - rho)


def test_band_threshold_is_a_quarter_of_nyquist_scaled_by_pixel_nm():
    from discaflow.simulate.imaging import band_threshold_shells

    assert band_threshold_shells(24, 10.0) == 6
    assert band_threshold_shells(24, 16.0) == 9
    assert band_threshold_shells(32, 10.0) == 8


def test_paper_convention_puts_more_snr_in_the_final_volume(tmp_path, demo_structures):
    """The paper's recipe sets the noise before the CTF and band-passes it: the written volumes hold
    more than the nominal SNR (about 2× at 16 Å), measured from two noise realisations, and the
    store's metadata records the convention and that figure."""
    from discaflow.simulate.subtomograms import final_snr

    nominal = 0.3
    imaging = Imaging(16.0, snr=nominal, snr_convention="paper")
    measured = _two_realisation_snr(tmp_path, demo_structures, imaging)
    predicted = final_snr(demo_structures, imaging, 24, 3)
    assert 1.5 * nominal < measured < 3.0 * nominal, measured
    assert abs(measured - predicted) / predicted < 0.2, (measured, predicted)
    with SubtomogramStore(tmp_path / "n1.h5") as s:
        sim = s.metadata["simulation"]
    assert sim["imaging"]["snr_convention"] == "paper"
    assert abs(sim["final_volume_snr"] - predicted) / predicted < 0.1


def test_paper_convention_noise_is_band_limited(tmp_path, demo_structures):
    """No power beyond the band threshold's soft edge (9 shells at 16 Å, fall-off 2 shells: e⁻³ at 12.5)."""
    imaging = Imaging(16.0, snr=0.01, snr_convention="paper")
    simulate_subtomograms(demo_structures, tmp_path / "p.h5", imaging, per_class=5, dtype="float32", progress=False)
    vols, _ = _store_arrays(tmp_path / "p.h5")
    kz, ky, kx = fourier_grid(vols.shape[1:], 1.0)
    shells = np.sqrt(kz**2 + ky**2 + kx**2) * 24
    power = (np.abs(np.fft.rfftn(vols, axes=(1, 2, 3))) ** 2).sum(0)
    assert power[shells > 9 + 2 * np.sqrt(3) + 0.01].max() < 1e-6 * power[(shells > 1) & (shells <= 9)].mean()
    assert power[(shells > 9) & (shells < 10.5)].sum() > 0  # the soft edge, not a hard cut


def test_unknown_snr_convention_is_refused():
    with pytest.raises(ValueError, match="snr_convention"):
        Imaging(16.0, snr_convention="nominal")
