"""DoG picking in slabs, extraction into the store, and their bad input."""

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from discaflow.errors import InputError
from discaflow.extract import extract_tomogram, gather_stores
from discaflow.io.mrc import write_volume
from discaflow.io.slabs import SlabReader, block_average, read_binned_rows
from discaflow.io.star import read_star
from discaflow.io.store import SubtomogramStore
from discaflow.metrics import match_picks
from discaflow.pick import PickParams, dog_filter, evaluate_picking, pick_tomogram, run_pick
from discaflow.simulate.imaging import Imaging
from discaflow.simulate.tomograms import simulate_tomogram


@pytest.fixture(scope="module")
def sim_tomo(tmp_path_factory, demo_structures):
    """A 128×128×64 tomogram at 16 Å with 12 particles (SNR 0.1) and its ground truth."""
    d = tmp_path_factory.mktemp("tomo")
    res = simulate_tomogram(demo_structures, Imaging(16.0, snr=0.1), shape_xyz_vox=(128, 128, 64),
                            particles_per_class=4, vesicles=0, blobs=4, seed=3)
    write_volume(d / "t.mrc", res.tomogram, 16.0)
    return d / "t.mrc", res


def test_slab_picking_identical_to_whole_volume(sim_tomo):
    path, _ = sim_tomo
    whole, _ = pick_tomogram(path, PickParams(slab_vox=10_000, threshold="none"))
    for slab in (5, 16):
        for threads in (1, 2):
            slabbed, _ = pick_tomogram(path, PickParams(slab_vox=slab, threads=threads, threshold="none"))
            pd.testing.assert_frame_equal(slabbed, whole)
    assert len(whole) > 20


def test_cascaded_dog_matches_direct_dog():
    v = np.random.default_rng(0).standard_normal((40, 40, 40)).astype(np.float32)
    s1, s2 = 2.5, 2.75
    direct = ndimage.gaussian_filter(v, s1) - ndimage.gaussian_filter(v, s2)
    ours = dog_filter(v.copy(), s1, s2, sign=1.0)
    assert np.abs(ours - direct).max() < 0.02 * np.abs(direct).max()


def test_picks_find_the_particles(sim_tomo):
    path, res = sim_tomo
    table, summary = pick_tomogram(path, PickParams(particle_radius_A=70, border_vox=6))
    truth = res.particles
    radius = truth["dfRadiusAngst"].to_numpy() / 16.0
    inside = np.all((truth[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy() >= 6) &
                    (truth[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy() <= np.array([127, 127, 63]) - 6), axis=1)
    m = match_picks(table, truth[inside], radius[inside])
    assert m["recall"] >= 0.9, m
    assert set(table.columns) >= {"rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnAutopickFigureOfMerit"}
    assert summary["binning"] == 1


def test_polarity_matters(sim_tomo):
    path, res = sim_tomo
    dark, _ = pick_tomogram(path, PickParams(border_vox=6, top_n=12))
    bright, _ = pick_tomogram(path, PickParams(border_vox=6, top_n=12, polarity="bright"))
    radius = res.particles["dfRadiusAngst"].to_numpy() / 16.0
    assert match_picks(dark, res.particles, radius)["precision"] > match_picks(bright, res.particles, radius)["precision"] + 0.3


def test_binning_reports_unbinned_coordinates(tmp_path, demo_structures):
    from discaflow.simulate.structures import load_structure
    from conftest import STRUCTURES

    s = [load_structure(STRUCTURES / "3j9i.mrc", 8.0)]
    res = simulate_tomogram(s, Imaging(8.0, snr=1.0), shape_xyz_vox=(160, 160, 96), particles_per_class=5,
                            vesicles=0, blobs=0, box_vox=32, seed=4)
    write_volume(tmp_path / "b.mrc", res.tomogram, 8.0)
    table, summary = pick_tomogram(tmp_path / "b.mrc", PickParams(border_vox=6, top_n=5), target_voxel_size_A=16.0)
    assert summary["binning"] == 2 and summary["binned_voxel_size_A"] == 16.0
    m = match_picks(table, res.particles, res.particles["dfRadiusAngst"].to_numpy() / 8.0)
    assert m["recall"] == 1.0
    d = np.linalg.norm(table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()[:, None] -
                       res.particles[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()[None], axis=2).min(1)
    assert np.median(d) < 3.0  # unbinned pixels


def test_block_average_and_binned_rows(tmp_path):
    v = np.random.default_rng(1).standard_normal((10, 12, 14)).astype(np.float32)
    write_volume(tmp_path / "v.mrc", v, 5.0)
    reader = SlabReader(tmp_path / "v.mrc")
    full = block_average(v, 2)
    assert full.shape == (5, 6, 7)
    np.testing.assert_allclose(read_binned_rows(reader, 1, 4, 2), full[1:4], rtol=1e-6)
    np.testing.assert_allclose(full[0, 0, 0], v[:2, :2, :2].mean(), rtol=1e-6)


def test_voxel_size_from_header_or_config(tmp_path):
    with mrcfile.new(tmp_path / "nov.mrc") as m:
        m.set_data(np.random.default_rng(0).standard_normal((40, 40, 40)).astype(np.float32))
    with pytest.raises(InputError, match="voxel size 0.*set voxel_size_A"):
        pick_tomogram(tmp_path / "nov.mrc", PickParams(border_vox=4))
    _, summary = pick_tomogram(tmp_path / "nov.mrc", PickParams(border_vox=4), voxel_size_A=16.0)
    assert summary["voxel_size_A"] == 16.0


def test_extraction_cuts_the_right_boxes(tmp_path, sim_tomo):
    path, res = sim_tomo
    picks = res.particles.copy()
    picks.loc[0, ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]] = [2.0, 64.0, 30.0]  # box crosses the edge
    out = tmp_path / "e.h5"
    counts = extract_tomogram(path, picks, out, box_vox=16, dtype="float32")
    assert counts["extracted"] == len(picks) - counts["edge"] and counts["edge"] >= 1
    vol = mrcfile.read(path)
    with SubtomogramStore(out) as s:
        assert s.box_vox == 16 and s.voxel_size_A == 16.0 and s.tomogram_names == ["t"]
        coords = s.column("coords")
        data = s.read()
        for i in range(len(s)):
            c = np.rint(coords[i][::-1]).astype(int)
            ref = vol[c[0] - 8: c[0] + 8, c[1] - 8: c[1] + 8, c[2] - 8: c[2] + 8]
            ref = (ref - ref.mean()) / ref.std()
            np.testing.assert_allclose(data[i], ref, atol=1e-4)
        assert s.metadata["extract"]["skipped_at_edge"] == counts["edge"]
    padded = extract_tomogram(path, picks, tmp_path / "p.h5", box_vox=16, edge="pad")
    assert padded["extracted"] == len(picks)


def test_gather_renumbers_tomograms(tmp_path, sim_tomo):
    path, res = sim_tomo
    a = extract_tomogram(path, res.particles.iloc[:5], tmp_path / "a.h5", box_vox=16, tomo_name="ta")
    b = extract_tomogram(path, res.particles.iloc[5:], tmp_path / "b.h5", box_vox=16, tomo_name="tb")
    gather_stores([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "all.h5", "ds")
    with SubtomogramStore(tmp_path / "all.h5") as s:
        assert len(s) == a["extracted"] + b["extracted"]
        assert s.tomogram_names == ["ta", "tb"]
        assert s.column("tomogram").tolist() == [0] * a["extracted"] + [1] * b["extracted"]
        assert s.normalized and s.dtype == np.float16


def test_zero_picks_give_empty_table_then_clear_message(tmp_path, caplog):
    # a noise tomogram whose mask excludes everything (a constant tomogram is an error of its own)
    noise = np.random.default_rng(0).standard_normal((48, 48, 48)).astype(np.float32)
    write_volume(tmp_path / "flat.mrc", noise, 16.0)
    write_volume(tmp_path / "mask.mrc", np.zeros((48, 48, 48), np.float32), 16.0)
    run_pick(tmp_path / "flat.mrc", tmp_path / "flat.star", {}, box_vox=16, mask=tmp_path / "mask.mrc")
    assert "no particles picked" in caplog.text
    table = read_star(tmp_path / "flat.star")
    assert len(table) == 0
    counts = extract_tomogram(tmp_path / "flat.mrc", table, tmp_path / "flat.h5", box_vox=16)
    assert counts["extracted"] == 0
    with pytest.raises(InputError, match="no particles were picked in any"):
        gather_stores([tmp_path / "flat.h5"], tmp_path / "all.h5", "ds")
    assert not (tmp_path / "all.h5").exists()


def test_constant_tomogram_is_a_one_line_error(tmp_path):
    write_volume(tmp_path / "zeros.mrc", np.zeros((48, 48, 48), np.float32), 16.0)
    with pytest.raises(InputError, match="zeros.mrc: every voxel is 0"):
        run_pick(tmp_path / "zeros.mrc", tmp_path / "zeros.star", {}, box_vox=16)
    assert not (tmp_path / "zeros.star").exists()


def _bad_tomogram(tmp_path, case):
    path = tmp_path / f"{case}.mrc"
    if case == "not_mrc":
        path.write_text("hello\n" * 50)
    elif case == "truncated":
        write_volume(path, np.zeros((32, 32, 32), np.float32), 10.0)
        path.write_bytes(path.read_bytes()[:50_000])
    elif case == "complex":
        with mrcfile.new(path) as m:
            m.set_data(np.zeros((32, 32, 32), np.complex64))
    elif case == "nan":
        v = np.zeros((40, 40, 40), np.float32)
        v[20, 3, 3] = np.inf
        write_volume(path, v, 10.0)
    elif case == "too_small":
        write_volume(path, np.random.default_rng(0).standard_normal((10, 40, 40)).astype(np.float32), 10.0)
    return path


@pytest.mark.parametrize("case", ["not_mrc", "truncated", "complex", "nan", "too_small"])
def test_bad_tomogram_one_line_nothing_written(tmp_path, case):
    path = _bad_tomogram(tmp_path, case)
    out = tmp_path / "out" / "picks.star"
    with pytest.raises(InputError) as err:
        run_pick(path, out, {}, box_vox=16)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_integer_tomogram_is_accepted(tmp_path, sim_tomo):
    path, _ = sim_tomo
    v = mrcfile.read(path)
    with mrcfile.new(tmp_path / "int.mrc") as m:
        m.set_data(np.rint(v / v.std() * 1000).astype(np.int16))
        m.voxel_size = 16.0
    table, _ = pick_tomogram(tmp_path / "int.mrc", PickParams(border_vox=6, top_n=10))
    assert len(table) == 10


def test_mask_restricts_picks_and_wrong_shape_is_an_error(tmp_path, sim_tomo):
    path, _ = sim_tomo
    mask = np.zeros((64, 128, 128), np.float32)
    mask[:, :, :64] = 1  # keep x < 64
    write_volume(tmp_path / "m.mrc", mask, 16.0)
    table, _ = pick_tomogram(path, PickParams(border_vox=6, threshold="none"), mask_path=tmp_path / "m.mrc")
    assert len(table) > 0 and table["rlnCoordinateX"].max() < 64
    write_volume(tmp_path / "bad.mrc", np.ones((10, 10, 10), np.float32), 16.0)
    with pytest.raises(InputError, match="bad.mrc: mask shape"):
        pick_tomogram(path, PickParams(border_vox=6), mask_path=tmp_path / "bad.mrc")


def test_evaluate_picking_json(tmp_path, sim_tomo):
    import json

    from discaflow.io.star import write_star

    path, res = sim_tomo
    write_star(tmp_path / "truth.star", res.particles)
    run_pick(path, tmp_path / "p.star", {}, box_vox=12)
    summary = evaluate_picking([tmp_path / "p.star"], [tmp_path / "truth.star"], [path], tmp_path / "e.json", box_vox=12)
    assert json.loads((tmp_path / "e.json").read_text())["recall"] == summary["recall"]
    assert summary["recall_boxable"] >= 0.9


# ---------------------------------------------------------------- an exact target voxel size

PIXEL_A, SIGMA_A = 2.62, 30.0
BLOBS_XYZ = np.array([[60.3, 70.1, 40.7], [130.2, 100.9, 60.4], [95.0, 125.0, 50.0]])  # unbinned pixels


@pytest.fixture(scope="module")
def blob_tomogram(tmp_path_factory):
    """Gaussian blobs (σ 30 Å) in a 2.62 Å tomogram: no integer binning reaches 16 Å."""
    shape = (104, 176, 176)  # z, y, x
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    vol = np.zeros(shape, np.float32)
    for x, y, z in BLOBS_XYZ:
        vol += np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) * PIXEL_A ** 2 / (2 * SIGMA_A ** 2)).astype(np.float32)
    path = tmp_path_factory.mktemp("blobs") / "blobs.mrc"
    write_volume(path, vol, PIXEL_A)
    return path


def _expected_boxes(centres_xyz, box, step_A):
    """The blobs sampled on a box grid of step_A Å centred on each position (block averaging by 6
    widens each blob by the box filter's variance)."""
    sigma = np.sqrt(SIGMA_A ** 2 + ((6 * PIXEL_A) ** 2 - PIXEL_A ** 2) / 12)
    k = (np.arange(box) - box // 2) * step_A
    out = []
    for c in centres_xyz:
        z, y, x = np.meshgrid(*(k + c[a] * PIXEL_A for a in (2, 1, 0)), indexing="ij")
        out.append(sum(np.exp(-((x - bx * PIXEL_A) ** 2 + (y - by * PIXEL_A) ** 2 + (z - bz * PIXEL_A) ** 2) / (2 * sigma ** 2))
                       for bx, by, bz in BLOBS_XYZ))
    return np.array(out)


def test_extraction_meets_a_target_voxel_size_that_no_integer_binning_reaches(tmp_path, blob_tomogram):
    from discaflow.export import box_centres_unbinned
    from discaflow.pick import extraction_grid

    assert extraction_grid(PIXEL_A, 16.0) == (6, 16.0)  # 6 × 2.62 = 15.72 Å, then resampled
    assert extraction_grid(4.0, 16.0) == (4, 16.0) and extraction_grid(4.0, None) == (1, 4.0)
    picks = pd.DataFrame(BLOBS_XYZ, columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    extract_tomogram(blob_tomogram, picks, tmp_path / "s.h5", box_vox=12, target_voxel_size_A=16.0, dtype="float32")
    with SubtomogramStore(tmp_path / "s.h5") as s:
        assert s.voxel_size_A == 16.0 and s.binning == pytest.approx(16.0 / PIXEL_A)
        x, coords = s.read(0, len(s)), s.column("coords")
    # each box is the blobs at exactly 16 Å, centred on the pick itself
    expected = _expected_boxes(coords, 12, 16.0)
    for got, want in zip(x, expected):
        assert 1 - np.corrcoef(got.ravel(), want.ravel())[0, 1] < 1e-5
    wrong = _expected_boxes(coords, 12, 6 * PIXEL_A)  # what block binning alone would give
    # (1 - r ≈ 1e-6 on the exact grid, 2–5e-4 on a 1.8 % coarser one)
    assert all(1 - np.corrcoef(g.ravel(), w.ravel())[0, 1] > 1e-4 for g, w in zip(x, wrong))
    # exports and maps take the box centre to be the pick (no rounding to a binned voxel)
    np.testing.assert_allclose(box_centres_unbinned(coords, 16.0 / PIXEL_A), coords)


def test_maps_of_a_resampled_store_put_each_class_at_its_particles(tmp_path, blob_tomogram):
    from discaflow.embed import run_embed

    picks = pd.DataFrame(BLOBS_XYZ, columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    extract_tomogram(blob_tomogram, picks, tmp_path / "s.h5", box_vox=12, target_voxel_size_A=16.0, dtype="float32",
                     tomo_name="blobs")
    with SubtomogramStore(tmp_path / "s.h5") as s:
        coords = s.column("coords")
        write_volume(tmp_path / "avg.mrc", s.read(0, 1)[0], 16.0)
    n = len(coords)
    pd.DataFrame({"dfParticleIndex": np.arange(n), "rlnTomoName": "blobs", "rlnClassNumber": 1,
                  "rlnCoordinateX": coords[:, 0], "rlnCoordinateY": coords[:, 1], "rlnCoordinateZ": coords[:, 2]}
                 ).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame({"dfParticleIndex": np.arange(n), "rlnClassNumber": 1, "dfHalf": 1, "dfEulerRot": 0.0, "dfEulerTilt": 0.0,
                  "dfEulerPsi": 0.0, "dfShiftX": 0.0, "dfShiftY": 0.0, "dfShiftZ": 0.0}).to_csv(tmp_path / "poses.csv", index=False)
    # averaging takes each particle's wedge from its tomogram's tilt range (a sheet's), where given
    from discaflow.average import run_average_class

    summary = run_average_class(tmp_path / "s.h5", tmp_path / "labels.csv", 1, tmp_path / "class_01",
                                {"iterations": 1, "global_iterations": 1, "min_particles": 2}, tilt_ranges={"blobs": [-50.0, 60.0]})
    assert summary["tilt_ranges_deg"] == [(-50.0, 60.0)]
    run_embed(blob_tomogram, "blobs", tmp_path / "s.h5", tmp_path / "labels.csv", tmp_path / "poses.csv",
              {1: tmp_path / "avg.mrc"}, tmp_path / "density.mrc", tmp_path / "labels.mrc", tmp_path / "o.png", {})
    with mrcfile.open(tmp_path / "density.mrc") as m:
        density, vs = m.data.copy(), float(m.voxel_size.x)
    assert vs == pytest.approx(6 * PIXEL_A, rel=1e-4)  # the maps lie on the 6× binned tomogram's grid
    # |density| is largest at each particle's voxel of that grid (the average's sign is the data's)
    for x, y, z in coords:
        i = np.rint((np.array([z, y, x]) - 2.5) / 6).astype(int)
        local = np.abs(density[i[0] - 3: i[0] + 4, i[1] - 3: i[1] + 4, i[2] - 3: i[2] + 4])
        assert np.unravel_index(np.argmax(local), local.shape) == (3, 3, 3)
