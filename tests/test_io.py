"""MRC reading checks, the subtomogram store, STAR tables, atomic writes."""

import mrcfile
import numpy as np
import pandas as pd
import pytest

from discaflow.errors import InputError
from discaflow.io.atomic import atomic_path
from discaflow.io.mrc import open_volume_mmap, read_volume, write_volume
from discaflow.io.star import read_star, write_star
from discaflow.io.store import StoreWriter, SubtomogramStore, normalize_subtomograms


def _mrc(path, data, voxel=10.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
    return path


def test_mrc_round_trip(tmp_path):
    data = np.random.default_rng(0).standard_normal((8, 9, 10)).astype(np.float32)
    write_volume(tmp_path / "v.mrc", data, 12.5)
    vol = read_volume(tmp_path / "v.mrc")
    assert np.array_equal(vol.data, data) and vol.voxel_size_A == pytest.approx(12.5)
    with open_volume_mmap(tmp_path / "v.mrc") as m:
        assert m.data.shape == (8, 9, 10)
    assert not list(tmp_path.glob(".*partial*"))


def test_integer_mode_is_converted(tmp_path):
    vol = read_volume(_mrc(tmp_path / "i.mrc", np.arange(64, dtype=np.int16).reshape(4, 4, 4)))
    assert vol.data.dtype == np.float32 and vol.data[3, 3, 3] == 63


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "complex", "nan"])
def test_bad_mrc_gives_one_line_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.mrc"
    if case == "text":
        path.write_text("this is not a volume\n" * 100)
    elif case == "truncated":
        _mrc(path, np.zeros((16, 16, 16), np.float32))
        path.write_bytes(path.read_bytes()[:2000])
    elif case == "complex":
        _mrc(path, np.zeros((4, 4, 4), np.complex64))
    elif case == "nan":
        data = np.zeros((4, 4, 4), np.float32)
        data[1, 2, 3] = np.nan
        _mrc(path, data)
    with pytest.raises(InputError) as err:
        read_volume(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_store_round_trip_batches_and_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (10, 6, 6, 6)).astype(np.float32)
    with StoreWriter(tmp_path / "s.h5", 6, 15.0, tomogram_names=["t0", "t1"], class_names=["a", "b"]) as w:
        w.append(data[:4], coords=np.ones((4, 3)), tomogram=0, score=np.arange(4), label=[0, 1, 0, 1])
        w.append(data[4:], coords=np.zeros((6, 3)), tomogram=1, score=np.arange(6), label=[1] * 6)
    with SubtomogramStore(tmp_path / "s.h5") as s:
        assert len(s) == 10 and s.box_vox == 6 and s.voxel_size_A == 15.0 and s.dtype == np.float16
        assert s.tomogram_names == ["t0", "t1"] and s.class_names == ["a", "b"]
        np.testing.assert_allclose(s.read(), normalize_subtomograms(data), atol=5e-3)
        batches = list(s.iter_batches(3))
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        np.testing.assert_array_equal(np.concatenate(batches), s.read())
        np.testing.assert_array_equal(s.take([7, 2, 7]), s.read()[[7, 2, 7]])
        assert s.column("tomogram").tolist() == [0] * 4 + [1] * 6
        assert s.column("label").tolist() == [0, 1, 0, 1] + [1] * 6
        assert s.column("euler_deg") is None


def test_store_float32_option_and_constant_subtomogram(tmp_path):
    with StoreWriter(tmp_path / "s.h5", 4, 10.0, dtype="float32") as w:
        w.append(np.full((2, 4, 4, 4), 7.0))
    with SubtomogramStore(tmp_path / "s.h5") as s:
        assert s.dtype == np.float32 and np.all(s.read() == 0)


def test_interrupted_store_write_leaves_no_store(tmp_path):
    with pytest.raises(ValueError):
        with StoreWriter(tmp_path / "s.h5", 4, 10.0) as w:
            w.append(np.zeros((2, 4, 4, 4)))
            w.append(np.zeros((2, 5, 5, 5)))  # wrong box: the write is abandoned
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "not_hdf5", "foreign_hdf5"])
def test_bad_store_gives_one_line(tmp_path, case):
    import h5py

    path = tmp_path / "s.h5"
    if case == "not_hdf5":
        path.write_text("nope")
    elif case == "foreign_hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = 1
    with pytest.raises(InputError) as err:
        SubtomogramStore(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_star_round_trip(tmp_path):
    table = pd.DataFrame({"rlnTomoName": ["t0", "t0"], "rlnCoordinateX": [1.5, 2.25], "rlnClassNumber": [1, 2]})
    write_star(tmp_path / "p.star", table)
    back = read_star(tmp_path / "p.star")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


# ---------------------------------------------------------------- tomogram sheets

def _tiny_mrc(path, voxel=10.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(path, np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32), voxel)
    return path


def test_tsv_sheet_rows_paths_and_overrides(tmp_path):
    from discaflow.io.sheets import read_sheet

    _tiny_mrc(tmp_path / "data" / "a.mrc"), _tiny_mrc(tmp_path / "data" / "b.mrc"), _tiny_mrc(tmp_path / "m.mrc")
    sheet = tmp_path / "sheets" / "tomos.tsv"
    sheet.parent.mkdir()
    sheet.write_text("name\tpath\tvoxel_size_A\ttilt_min_deg\ttilt_max_deg\tmask\n"
                     f"a\t{tmp_path / 'data' / 'a.mrc'}\t\t-54\t60\t\n"
                     "b\tdata/b.mrc\t13.5\t\t\tm.mrc\n")  # relative: found from the folder above the sheet
    rows = read_sheet(sheet)
    assert list(rows) == ["a", "b"]
    assert rows["a"] == {"name": "a", "path": str(tmp_path / "data" / "a.mrc"), "voxel_size_A": None,
                         "tilt_min_deg": -54.0, "tilt_max_deg": 60.0, "mask": None}
    assert rows["b"]["path"] == str(tmp_path / "data" / "b.mrc") and rows["b"]["voxel_size_A"] == 13.5
    assert rows["b"]["mask"] == str(tmp_path / "m.mrc") and rows["b"]["tilt_min_deg"] is None


@pytest.mark.parametrize("text, message", [
    ("name\tpath\nA\tnowhere.mrc\n", r"tomogram row 1 \(A\): nowhere.mrc: file not found"),
    ("name\tpath\tvoxel\nA\ta.mrc\t1\n", r"unknown \['voxel'\]"),
    ("name\tpath\tvoxel_size_A\nA\ta.mrc\tten\n", r"tomogram row 1: column 'voxel_size_A': 'ten' is not a number"),
    ("name\tpath\tvoxel_size_A\nA\ta.mrc\t-2\n", r"tomogram row 1 \(A\): column 'voxel_size_A'"),
    ("name\tpath\ttilt_min_deg\ttilt_max_deg\nA\ta.mrc\t30\t60\n", r"column 'tilt_min_deg'"),
    ("name\tpath\ttilt_min_deg\nA\ta.mrc\t-60\n", "give both tilt_min_deg and tilt_max_deg"),
    ("name\tpath\nA\ta.mrc\nA\ta.mrc\n", r"tomogram name 'A' appears twice \(rows 1 and 2\)"),
    ("name\tpath\n", "lists no tomogram"),
])
def test_bad_sheet_is_one_line_naming_the_row(tmp_path, text, message):
    from discaflow.io.sheets import read_sheet

    _tiny_mrc(tmp_path / "a.mrc")
    (tmp_path / "s.tsv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_sheet(tmp_path / "s.tsv")


def test_relion5_tomograms_star(tmp_path):
    """RELION 5: paths relative to the project (two folders above Job/jobNNN/tomograms.star), voxel size =
    tilt-series pixel × tomogram binning, tilt range from each tilt series' nominal stage tilts."""
    import starfile

    from discaflow.io.sheets import read_sheet

    project = tmp_path / "project"
    _tiny_mrc(project / "Reconstruct" / "job010" / "tomograms" / "rec_TS_01.mrc")
    _tiny_mrc(project / "Reconstruct" / "job010" / "tomograms" / "rec_TS_02.mrc")
    (project / "AlignTiltSeries" / "job008" / "tilt_series").mkdir(parents=True)
    starfile.write({"TS_01": pd.DataFrame({"rlnTomoNominalStageTiltAngle": [-48.0, -3.0, 0.0, 3.0, 57.0]})},
                   project / "AlignTiltSeries" / "job008" / "tilt_series" / "TS_01.star")
    table = pd.DataFrame({
        "rlnTomoName": ["TS_01", "TS_02"],
        "rlnTomoTiltSeriesStarFile": ["AlignTiltSeries/job008/tilt_series/TS_01.star", "AlignTiltSeries/job008/tilt_series/TS_02.star"],
        "rlnTomoTiltSeriesPixelSize": [2.39, 2.39], "rlnTomoTomogramBinning": [6.0, 4.0],
        "rlnTomoReconstructedTomogram": ["Reconstruct/job010/tomograms/rec_TS_01.mrc", "Reconstruct/job010/tomograms/rec_TS_02.mrc"],
    })
    star = project / "Reconstruct" / "job010" / "tomograms.star"
    starfile.write({"global": table}, star)
    rows = read_sheet(star)
    assert rows["TS_01"]["path"] == str(project / "Reconstruct" / "job010" / "tomograms" / "rec_TS_01.mrc")
    assert rows["TS_01"]["voxel_size_A"] == pytest.approx(14.34) and rows["TS_02"]["voxel_size_A"] == pytest.approx(9.56)
    assert (rows["TS_01"]["tilt_min_deg"], rows["TS_01"]["tilt_max_deg"]) == (-48.0, 57.0)
    assert rows["TS_02"]["tilt_min_deg"] is None  # its tilt-series file is absent: the average section's range
    starfile.write({"particles": pd.DataFrame({"rlnCoordinateX": [1.0]})}, tmp_path / "p.star")
    with pytest.raises(InputError, match="not a RELION 5 tomograms.star"):
        read_sheet(tmp_path / "p.star")
