"""The bad-input matrix: every stage entry point × the broken inputs a user can hand it.

Each case must exit with status 2, print exactly one line ``discaflow: error: …`` that names the
offending file, print no traceback, and leave no output file behind. (Configuration problems are in
tests/test_workflow.py: unknown keys, wrong types, missing tomograms, duplicate dataset names.)
"""

import mrcfile
import numpy as np
import pandas as pd
import pytest

from discaflow.cli import main
from discaflow.io.store import StoreWriter


def _mrc(path, data, vs=10.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = vs
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((48, 64, 64)).astype(np.float32)
    good = _mrc(d / "good.mrc", vol)
    nan = vol.copy()
    nan[3, 4, 5] = np.nan
    out = {
        "good": good,
        "truncated": d / "truncated.mrc",
        "not_mrc": d / "not_mrc.mrc",
        "complex": _mrc(d / "complex.mrc", (vol + 0j).astype(np.complex64)),
        "nan": _mrc(d / "nan.mrc", nan),
        "constant": _mrc(d / "constant.mrc", np.zeros_like(vol)),
        "zero_voxel_size": _mrc(d / "zero_voxel_size.mrc", vol, vs=0.0),
        "smaller_than_box": _mrc(d / "smaller_than_box.mrc", vol[:10]),
    }
    out["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["not_mrc"].write_text("this is not an MRC file\n" * 50)
    assert main(["pick", str(good), "--particle-radius-A", "50", "--box-vox", "16", "--out", str(d / "picks.star")]) == 0
    out["picks"] = d / "picks.star"
    pd.DataFrame({"rlnCoordinateX": [], "rlnCoordinateY": [], "rlnCoordinateZ": []}).to_csv(d / "x.csv")
    # stores: good (2 tomograms' worth of particles), with NaNs, empty, tiny
    def store(name, n, nan_at=None, box=16):
        x = rng.standard_normal((n, box, box, box)).astype(np.float32)
        with StoreWriter(d / name, box, 20.0, normalize=nan_at is None, tomogram_names=["good"], binning=2) as w:
            if nan_at is not None:
                x[nan_at, 0, 0, 0] = np.nan
            if n:
                w.append(x, coords=rng.uniform(16, 40, (n, 3)), tomogram=np.zeros(n, np.int32), score=np.ones(n))
        return d / name
    out["store"] = store("store.h5", 40)
    out["store_nan"] = store("store_nan.h5", 40, nan_at=7)
    out["store_empty"] = store("store_empty.h5", 0)
    out["store_tiny"] = store("store_tiny.h5", 1)
    out["not_hdf5"] = d / "not_hdf5.h5"
    out["not_hdf5"].write_text("nope")
    labels = pd.DataFrame({"dfParticleIndex": np.arange(40), "rlnTomoName": "good", "rlnCoordinateX": 0.0,
                           "rlnCoordinateY": 0.0, "rlnCoordinateZ": 0.0, "rlnClassNumber": 1 + np.arange(40) % 2})
    labels.to_csv(d / "labels.csv", index=False)
    out["labels"] = d / "labels.csv"
    out["corrupt_bundle"] = d / "corrupt_bundle"
    out["corrupt_bundle"].mkdir()
    (out["corrupt_bundle"] / "bundle.json").write_text("{ not json")
    out["dir"] = d
    return out


def _check(capsys, argv, must_name, outputs):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if line.startswith("discaflow:") or "Traceback" in line]
    assert rc == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("discaflow: error: "), err
    assert str(must_name) in err[0], (must_name, err[0])
    for o in outputs:
        assert not o.exists(), f"{o} left behind"


MRC_CASES = ["truncated", "not_mrc", "complex", "nan", "constant", "zero_voxel_size", "smaller_than_box"]


@pytest.mark.parametrize("case", MRC_CASES)
def test_pick_bad_tomogram(files, capsys, tmp_path, case):
    out = tmp_path / "p.star"
    _check(capsys, ["pick", files[case], "--particle-radius-A", "50", "--box-vox", "16", "--out", out], files[case].name, [out])


@pytest.mark.parametrize("case", [c for c in MRC_CASES if c != "constant"])
def test_extract_bad_tomogram(files, capsys, tmp_path, case):
    out = tmp_path / "s.h5"
    _check(capsys, ["extract", files[case], files["picks"], "--box-vox", "16", "--out", out], files[case].name, [out])


def test_extract_bad_picks_file(files, capsys, tmp_path):
    out = tmp_path / "s.h5"
    _check(capsys, ["extract", files["good"], files["not_mrc"], "--box-vox", "16", "--out", out], files["not_mrc"].name, [out])


@pytest.mark.parametrize("case", ["not_hdf5", "store_empty"])
def test_gather_bad_store(files, capsys, tmp_path, case):
    out = tmp_path / "g.h5"
    name = files[case].name if case == "not_hdf5" else "no particles"
    _check(capsys, ["gather", files[case], "--out", out], name, [out])


@pytest.mark.parametrize("case", ["not_hdf5", "store_nan", "store_empty", "store_tiny"])
def test_disca_bad_store(files, capsys, tmp_path, case):
    out = tmp_path / "result"
    _check(capsys, ["disca", files[case], "--state-dir", tmp_path / "state", "--out", out, "--blocks", "2",
                    "--first-filters", "2", "--filter-step", "2", "--feature-dim", "8", "--max-iterations", "1",
                    "--precision", "float32"], files[case].name, [out / "labels.csv"])


def test_predict_with_a_corrupt_bundle(files, capsys, tmp_path):
    out = tmp_path / "l.csv"
    _check(capsys, ["predict", files["store"], "--bundle", files["corrupt_bundle"], "--out", out], "corrupt_bundle", [out])


def test_predict_with_a_missing_bundle(files, capsys, tmp_path):
    out = tmp_path / "l.csv"
    _check(capsys, ["predict", files["store"], "--bundle", tmp_path / "nope", "--out", out], "nope", [out])


@pytest.mark.parametrize("case", ["store_nan", "not_hdf5"])
def test_average_bad_store(files, capsys, tmp_path, case):
    out = tmp_path / "avg"
    # (the NaN is in a particle of class 2: class 1, already done, is a complete result and stays)
    _check(capsys, ["average", files[case], files["labels"], "--out-dir", out, "--iterations", "1"], files[case].name,
           [out / "class_02" / "summary.json", out / "summary.json"])


def test_average_missing_labels(files, capsys, tmp_path):
    out = tmp_path / "avg"
    _check(capsys, ["average", files["store"], tmp_path / "labels.csv", "--out-dir", out], "labels.csv", [out / "summary.json"])


@pytest.mark.parametrize("case", ["truncated", "not_mrc", "complex"])
def test_embed_bad_tomogram(files, capsys, tmp_path, case):
    prefix = tmp_path / "e"
    poses = tmp_path / "poses.csv"
    pd.DataFrame({"dfParticleIndex": [0], "rlnClassNumber": [1], "dfHalf": [1], "dfEulerRot": [0.0], "dfEulerTilt": [0.0],
                  "dfEulerPsi": [0.0], "dfShiftX": [0.0], "dfShiftY": [0.0], "dfShiftZ": [0.0], "dfScore": [1.0]}).to_csv(poses, index=False)
    avg = _mrc(tmp_path / "avg.mrc", np.zeros((16, 16, 16), np.float32), vs=20.0)
    _check(capsys, ["embed", f"good={files[case]}", "--store", files["store"], "--labels", files["labels"], "--poses", poses,
                    "--average", f"1={avg}", "--out-prefix", prefix], files[case].name,
           [tmp_path / "e_density.mrc", tmp_path / "e_labels.mrc", tmp_path / "e_overlay.png"])


def test_export_with_an_unknown_tomogram(files, capsys, tmp_path):
    out = tmp_path / "export"
    _check(capsys, ["export", files["store"], files["labels"], "--tomograms", f"other={files['good']}", "--out-dir", out],
           "labels.csv", [out / "relion5_particles.star"])


def test_export_bad_tomogram(files, capsys, tmp_path):
    out = tmp_path / "export"
    _check(capsys, ["export", files["store"], files["labels"], "--tomograms", f"good={files['not_mrc']}", "--out-dir", out],
           files["not_mrc"].name, [out / "relion5_particles.star"])


def test_bad_input_matrix_is_complete():
    """Every stage of the command line appears in this matrix."""
    import discaflow.cli as cli

    stages = set(cli.build_parser()._subparsers._group_actions[0].choices)
    covered = {"pick", "extract", "gather", "disca", "predict", "average", "embed", "export", "simulate"}
    assert stages <= covered, stages - covered  # (simulate's bad input is tested in tests/test_cli.py)
