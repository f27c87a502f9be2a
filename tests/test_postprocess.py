"""Post-processing: Fourier tools, alignment and averaging, re-embedding, STAR export."""

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from conftest import STRUCTURES
from discaflow.fourier import fsc, full_from_rfft, resolution_at, rfft_from_full, shell_index, wedge_mask
from discaflow.geometry import transform_volume


# ---------------------------------------------------------------- Fourier tools

def test_fsc_of_identical_maps_is_one_and_of_independent_noise_near_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 32, 32))
    assert np.allclose(fsc(a, a)[1:], 1.0)
    curves = np.array([fsc(rng.standard_normal((32, 32, 32)), rng.standard_normal((32, 32, 32)))[2:] for _ in range(5)])
    # shells of ≥ 50 voxels: |FSC| of independent noise is about 1/sqrt(n_voxels in the shell)
    assert abs(curves.mean()) < 0.02 and np.abs(curves).max() < 0.35


def test_resolution_reads_the_threshold_crossing():
    curve = np.array([1.0, 0.9, 0.6, 0.3, 0.1, 0.0])
    # 0.143 is crossed between shells 3 (0.3) and 4 (0.1): shell 3.785 of a 10-voxel box at 2 Å
    assert resolution_at(curve, 0.143, 2.0, 10) == pytest.approx(20 / 3.785, rel=1e-3)
    assert resolution_at(np.ones(6), 0.143, 2.0, 10) == 4.0  # never below: Nyquist


def test_wedge_mask_matches_the_simulators_sampling():
    from discaflow.simulate.imaging import Imaging, transfer_function

    n = 24
    h = transfer_function((n,) * 3, Imaging(10.0, apply_ctf=False, tilt_step_deg=1.0), object_size_A=n * 10 * 4)
    w = wedge_mask(n, -60, 60)
    inside = shell_index(n) <= n // 2 - 1
    assert np.mean((h > 0)[inside] == (w > 0)[inside]) > 0.98
    assert w[0, 0, 0] == 1 and w[5, 0, 0] == 0 and w[0, 0, 5] == 1  # kz axis missing, kx axis measured
    assert np.array_equal(rfft_from_full(full_from_rfft(w)), w)


# ---------------------------------------------------------------- averaging

@pytest.fixture(scope="module")
def particles(tmp_path_factory):
    """60 simulated particles of one structure at SNR 1, with their true rotations."""
    from discaflow.io.store import SubtomogramStore
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import place_in_box, simulate_subtomograms

    path = tmp_path_factory.mktemp("avg") / "set.h5"
    s = load_structure(STRUCTURES / "4v4r.mrc", 16.0)
    simulate_subtomograms([s], path, Imaging(16.0, snr=1.0, apply_ctf=False), per_class=60, seed=5, progress=False)
    with SubtomogramStore(path) as st:
        x = st.read(0, len(st))
        truth = Rotation.from_euler("ZYZ", st.column("euler_deg"), degrees=True)
    return path, x, truth, place_in_box(s, None, (0, 0, 0), 24)


def test_averaging_recovers_a_known_structure(particles):
    from discaflow.average import SubtomogramAverager, align_volumes

    _, x, true_rot, truth = particles
    av = SubtomogramAverager().fit(x, 16.0)
    q, u, cc = align_volumes(av.average_, truth)
    # our average is the density (as imaged); compare within the mask after alignment
    aligned = transform_volume(av.average_, q, u)
    m = av.mask_ > 0.5
    assert np.corrcoef(aligned[m], truth[m])[0, 1] > 0.9
    # particle rotations agree with the truth up to the average's own frame
    err = np.degrees(((true_rot * q).inv() * av.rotations_).magnitude())
    assert np.median(err) < 10
    assert av.resolution_0143_A_ < 60 and len(av.fsc_) == 13
    assert set(np.unique(av.half_)) == {1, 2}


def test_each_particle_is_compensated_for_its_own_tomograms_wedge():
    """Particles from tomograms of different tilt ranges: with each particle's own wedge the average
    is the structure wherever some particle measured it; one wedge for all biases the band between."""
    import scipy.fft as sfft

    from discaflow.average import _workspace, wedge_compensated_average, wedge_groups
    from discaflow.fourier import wedge_mask

    n = 16
    v = np.random.default_rng(0).normal(size=(n, n, n)).astype(np.float32)
    ranges = np.array([[-60, 60], [-60, 60], [-30, 30], [-30, 30], [-45, 50], [np.nan, np.nan]], float)
    groups, ids = wedge_groups(ranges, (-60.0, 60.0), len(ranges))
    assert groups == [(-60.0, 60.0), (-30.0, 30.0), (-45.0, 50.0)] and ids.tolist() == [0, 0, 1, 1, 2, 0]
    wedges = [wedge_mask(n, *g) for g in groups]
    x = np.stack([sfft.irfftn(sfft.rfftn(v) * wedges[k], s=(n, n, n)) for k in ids]).astype(np.float32)
    ws = _workspace(n, n / 2 - 1, (-60.0, 60.0), 0)
    rot, shifts = Rotation.identity(len(x)), np.zeros((len(x), 3))
    measured = sfft.irfftn(sfft.rfftn(v) * np.max(wedges, axis=0), s=(n, n, n))
    own = wedge_compensated_average(x, rot, shifts, ws, wedges=wedges, wedge_ids=ids)
    one = wedge_compensated_average(x, rot, shifts, ws)
    assert np.abs(own - measured).max() < 1e-4 * np.abs(measured).max()
    assert np.abs(one - measured).max() > 0.05 * np.abs(measured).max()


def test_averaging_with_per_particle_tilt_ranges(particles):
    from discaflow.average import SubtomogramAverager

    _, x, _, _ = particles
    tilt = np.where(np.arange(len(x))[:, None] % 2 == 0, [-60.0, 60.0], [-40.0, 40.0])
    calls = []
    av = SubtomogramAverager(iterations=2, global_iterations=1).fit(x[:12], 16.0, tilt_ranges=tilt[:12],
                                                                     progress=lambda done, total: calls.append((done, total)))
    assert np.isfinite(av.average_).all() and len(av.rotations_) == 12
    # progress: particle alignments done of particles × iterations, never backwards
    assert calls[-1] == (24, 24) and all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_run_average_class_writes_every_output(particles, tmp_path):
    import json

    from discaflow.average import collect_averages, run_average_class
    from discaflow.io.mrc import read_volume

    path, x, _, _ = particles
    labels = pd.DataFrame({"dfParticleIndex": np.arange(len(x)), "rlnClassNumber": [1] * 40 + [2] * 20})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    settings = {"iterations": 2, "global_iterations": 1, "global_step_deg": 45}
    s = run_average_class(path, tmp_path / "labels.csv", 2, tmp_path / "class_02", settings)
    assert s["particles"] == 20
    for f in ("average.mrc", "half1.mrc", "half2.mrc", "fsc.csv", "fsc.png", "particles.csv", "summary.json"):
        assert (tmp_path / "class_02" / f).stat().st_size > 0
    assert read_volume(tmp_path / "class_02" / "average.mrc").voxel_size_A == pytest.approx(16.0)
    poses = pd.read_csv(tmp_path / "class_02" / "particles.csv")
    assert sorted(poses["dfParticleIndex"]) == list(range(40, 60))
    out = collect_averages({2: tmp_path / "class_02"}, tmp_path / "all")
    assert out["classes"][0]["class"] == 2 and json.loads((tmp_path / "all" / "summary.json").read_text())
    assert len(pd.read_csv(tmp_path / "all" / "poses.csv")) == 20


def test_too_small_class_is_a_one_line_error(particles, tmp_path):
    from discaflow.average import run_average_class
    from discaflow.errors import InputError

    path, x, _, _ = particles
    pd.DataFrame({"dfParticleIndex": np.arange(len(x)), "rlnClassNumber": [1] * (len(x) - 1) + [2]}).to_csv(
        tmp_path / "labels.csv", index=False)
    with pytest.raises(InputError, match="class 2 has 1 particle"):
        run_average_class(path, tmp_path / "labels.csv", 2, tmp_path / "out", {})
    assert not (tmp_path / "out" / "summary.json").exists()


# ---------------------------------------------------------------- re-embedding

def test_embedding_puts_density_at_the_right_voxels():
    from discaflow.embed import embed_particles

    n = 16
    avg = np.zeros((n, n, n), np.float32)
    avg[6:10, 7:9, 5:12] = -1.0   # an asymmetric dark object: a bar along x with a knob
    avg[9:11, 7:9, 10:12] = -1.0
    shape = (40, 48, 56)
    rots = Rotation.random(3, random_state=2)
    pos = np.array([[12.0, 14.0, 15.0], [27.3, 30.0, 40.6], [20.0, 25.0, 28.0]])  # z, y, x
    expected = np.zeros(shape, np.float32)
    for p, i in zip(pos, range(3)):
        # the object placed independently: rotate in a big box centred at the position
        ic = np.rint(p).astype(int)
        piece = transform_volume(avg, rots[i], shift_xyz_vox=(p - ic)[::-1])
        expected[ic[0] - 8: ic[0] + 8, ic[1] - 8: ic[1] + 8, ic[2] - 8: ic[2] + 8] += piece
    density, labels = embed_particles(shape, pos, rots, np.array([1, 2, 1]), {1: avg, 2: avg}, label_threshold=0.5,
                                      mask_radius_vox=7)
    assert np.corrcoef(density.ravel(), expected.ravel())[0, 1] > 0.98
    # labels sit on the objects, with their class
    assert labels[tuple(np.rint(pos[1]).astype(int))] == 2
    assert labels[tuple(np.rint(pos[0]).astype(int))] == 1
    assert labels[0, 0, 0] == 0 and set(np.unique(labels)) == {0, 1, 2}


# ---------------------------------------------------------------- export

def _relion_matrix(rot, tilt, psi):
    """RELION's Euler::anglesToMatrix3 (src/jaz/math/Euler_angles_relion.h), written out."""
    sp, cp = np.sin(np.radians(rot)), np.cos(np.radians(rot))
    st, ct = np.sin(np.radians(tilt)), np.cos(np.radians(tilt))
    sc, cc = np.sin(np.radians(psi)), np.cos(np.radians(psi))
    return np.array([[cc * ct * cp - sc * sp, cc * ct * sp + sc * cp, -cc * st],
                     [-sc * ct * cp - cc * sp, -sc * ct * sp + cc * cp, sc * st],
                     [st * cp, st * sp, ct]])


def test_relion_angles_give_relions_particle_to_tomogram_matrix():
    from discaflow.export import relion_angles, rotations_from_relion

    r = Rotation.random(20, random_state=3)
    ang = relion_angles(r)
    for i in range(20):
        # RELION maps particle (reference) coordinates into the tomogram with this matrix: our R
        assert np.allclose(_relion_matrix(*ang[i]), r[i].as_matrix(), atol=1e-9)
    assert np.allclose((rotations_from_relion(ang) * r.inv()).magnitude(), 0, atol=1e-9)


@pytest.mark.parametrize("size, binning", [((100, 80, 40), 1), ((928, 960, 500), 2), ((4000, 6000, 1001), 4), ((511, 512, 17), 3)])
def test_coordinate_flavours_convert_exactly(size, binning):
    from discaflow.export import centered_angstrom, pixels_from_centered

    rng = np.random.default_rng(4)
    pixel = 1.35 * binning
    xyz = rng.uniform(0, 1, (50, 3)) * np.array(size)
    back = pixels_from_centered(centered_angstrom(xyz, size, pixel), size, pixel)
    assert np.allclose(back, xyz, rtol=0, atol=1e-9)
    assert np.allclose(centered_angstrom(np.array(size) / 2.0, size, pixel), 0)


def test_export_round_trips_through_starfile(tmp_path):
    from discaflow.export import rotations_from_relion, run_export
    from discaflow.io.store import StoreWriter

    rng = np.random.default_rng(5)
    n, b, f = 30, 16, 2
    coords = rng.uniform(20, 150, (n, 3)).astype(np.float32)
    names = ["TS_01", "TS_02"]
    tomo = (np.arange(n) % 2).astype(np.int32)
    with StoreWriter(tmp_path / "s.h5", b, 2 * 6.8, binning=f, tomogram_names=names) as w:
        w.append(rng.standard_normal((n, b, b, b)).astype(np.float32), coords=coords, tomogram=tomo, score=np.ones(n))
    labels = pd.DataFrame({"dfParticleIndex": np.arange(n), "rlnTomoName": [names[t] for t in tomo],
                           "rlnClassNumber": 1 + np.arange(n) % 3})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    rots = Rotation.random(n, random_state=6)
    e = rots.as_euler("ZYZ", degrees=True)
    shifts = rng.uniform(-2, 2, (n, 3))
    poses = pd.DataFrame({"dfParticleIndex": np.arange(n), "rlnClassNumber": labels["rlnClassNumber"], "dfHalf": 1 + np.arange(n) % 2,
                          "dfEulerRot": e[:, 0], "dfEulerTilt": e[:, 1], "dfEulerPsi": e[:, 2],
                          "dfShiftX": shifts[:, 0], "dfShiftY": shifts[:, 1], "dfShiftZ": shifts[:, 2], "dfScore": 0.5})
    poses.to_csv(tmp_path / "poses.csv", index=False)
    sizes = {"TS_01": (200, 180, 160), "TS_02": (210, 190, 170)}
    run_export(tmp_path / "s.h5", tmp_path / "labels.csv", tmp_path / "poses.csv", sizes, tmp_path / "out", {})

    # the refined position: box centre (binned grid) + shift, in unbinned pixels
    from discaflow.export import box_centres_unbinned

    expected_px = box_centres_unbinned(coords, f) + shifts * f
    warp = starfile.read(tmp_path / "out" / "warp_particles.star")
    assert np.allclose(warp[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(), expected_px, atol=1e-4)
    assert list(warp["rlnMicrographName"][:2]) == ["TS_01.tomostar", "TS_02.tomostar"]
    r5 = starfile.read(tmp_path / "out" / "relion5_particles.star")
    assert float(r5["optics"]["rlnTomoTiltSeriesPixelSize"][0]) == pytest.approx(6.8)
    p = r5["particles"]
    size = np.array([sizes[t] for t in p["rlnTomoName"]], float)
    cen = p[["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]].to_numpy()
    assert np.allclose(cen / 6.8 + size / 2, expected_px, atol=1e-4)
    back = rotations_from_relion(p[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy())
    assert np.allclose((back * rots.inv()).magnitude(), 0, atol=1e-4)
    assert list(p["rlnClassNumber"]) == list(labels["rlnClassNumber"])
    imp = starfile.read(tmp_path / "out" / "relion5_import.star")
    assert list(imp["rlnTomoName"]) == names
    one = starfile.read(tmp_path / "out" / imp["rlnTomoImportParticleFile"][0])
    assert (one["rlnTomoName"] == "TS_01").all() and len(one) == 15
    per_class = starfile.read(tmp_path / "out" / "classes" / "class_02_warp_particles.star")
    assert (per_class["rlnClassNumber"] == 2).all() and len(per_class) == 10
    csv = pd.read_csv(tmp_path / "out" / "particles.csv")
    assert np.allclose(csv[["x_px_unbinned", "y_px_unbinned", "z_px_unbinned"]].to_numpy(), expected_px, atol=1e-6)


def test_overlapping_boxes_go_to_the_same_half():
    from discaflow.average import half_sets, overlap_groups

    rng = np.random.default_rng(0)
    # three tomograms; in each, chains of particles 10 px apart (boxes of 24 px overlap) and loners
    coords, tomo = [], []
    for t in range(3):
        for chain in range(4):
            start = rng.uniform(0, 1000, 3)
            for j in range(1 + chain):
                coords.append(start + [10.0 * j, 0, 0])
                tomo.append(t)
    coords, tomo = np.array(coords), np.array(tomo)
    groups = overlap_groups(coords, tomo, 24.0)
    assert len(np.unique(groups)) == 12  # 4 chains per tomogram
    half = half_sets(len(coords), groups, rng)
    for g in np.unique(groups):
        assert len(set(half[groups == g])) == 1
    assert abs(np.sum(half == 1) - np.sum(half == 2)) <= 4
    # the same positions in different tomograms never group
    same = overlap_groups(np.zeros((3, 3)), np.arange(3), 24.0)
    assert len(np.unique(same)) == 3
