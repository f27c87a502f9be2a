"""The bad-input matrix: every stage entry point × the broken inputs a user can hand it.

Each case runs twice, with a fresh output path and over an earlier good output, and must: exit with
status 2, print exactly one line ``discaflow: error: …`` that names the offending file or option,
print no traceback, create no file (no partial, no lock, no state directory) and leave the earlier
output byte for byte as it was. (Configuration problems are in tests/test_workflow.py; tomogram
headers at DAG build are at the end of this file.)
"""

import os
import shutil
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pandas as pd
import pytest

from discaflow.bundle import labels_table
from discaflow.cli import main
from discaflow.errors import InputError
from discaflow.io.star import write_star
from discaflow.io.store import StoreWriter, SubtomogramStore


def _mrc(path, data, vs=10.0):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = vs
    return path


def _labels(store_path, out, classes=None, edit=None):
    with SubtomogramStore(store_path) as s:
        n = len(s)
        t = labels_table(s, np.asarray(classes if classes is not None else np.arange(n) % 2), np.ones(n))
    if edit:
        edit(t)
    t.to_csv(out, index=False)
    return out


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
        "other_voxel_size": _mrc(d / "other_voxel_size.mrc", vol, vs=8.0),
    }
    out["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["not_mrc"].write_text("this is not an MRC file\n" * 50)
    assert main(["pick", str(good), "--particle-radius-A", "50", "--box-vox", "16", "--out", str(d / "picks.star")]) == 0
    out["picks"] = d / "picks.star"
    xyz = pd.DataFrame({"rlnCoordinateX": [20.0, 30.0, 40.0], "rlnCoordinateY": [20.0, 30.0, 40.0], "rlnCoordinateZ": [20.0, 24.0, 30.0]})
    for name, edit in {
        "picks_duplicate": lambda t: pd.concat([t, t.iloc[[1]]], ignore_index=True),
        "picks_nan": lambda t: t.assign(rlnCoordinateY=[20.0, np.nan, 40.0]),
        "picks_text": lambda t: t.assign(rlnCoordinateX=["20", "abc", "40"]),
        "picks_outside": lambda t: t * 10.0,  # Å instead of pixels
        "picks_one_outside": lambda t: pd.concat([t, pd.DataFrame({"rlnCoordinateX": [70.0], "rlnCoordinateY": [5.0],
                                                                    "rlnCoordinateZ": [5.0]})], ignore_index=True),
    }.items():
        write_star(d / f"{name}.star", edit(xyz.copy()))
        out[name] = d / f"{name}.star"

    def store(name, n, nan_at=None, box=16, vs=20.0, tomo="good"):
        x = rng.standard_normal((n, box, box, box)).astype(np.float32)
        with StoreWriter(d / name, box, vs, normalize=nan_at is None, tomogram_names=[tomo], binning=2) as w:
            if nan_at is not None:
                x[nan_at, 0, 0, 0] = np.nan
            if n:
                w.append(x, coords=rng.uniform(16, 40, (n, 3)), tomogram=np.zeros(n, np.int32), score=np.ones(n))
        return d / name

    out["store"] = store("store.h5", 40)
    out["store_other"] = store("store_other.h5", 40)
    out["store_nan"] = store("store_nan.h5", 40, nan_at=7)
    out["store_empty"] = store("store_empty.h5", 0)
    out["store_tiny"] = store("store_tiny.h5", 1)
    out["store_three"] = store("store_three.h5", 3)
    out["not_hdf5"] = d / "not_hdf5.h5"
    out["not_hdf5"].write_text("nope")
    out["labels"] = _labels(out["store"], d / "labels.csv")
    out["labels_other_store"] = _labels(out["store_other"], d / "labels_other_store.csv")
    out["labels_store_nan"] = _labels(out["store_nan"], d / "labels_store_nan.csv")
    out["labels_empty"] = _labels(out["store_empty"], d / "labels_empty.csv")
    out["labels_out_of_range"] = _labels(out["store"], d / "labels_out_of_range.csv",
                                         edit=lambda t: t.loc.__setitem__((39, "dfParticleIndex"), 40))
    out["labels_negative"] = _labels(out["store"], d / "labels_negative.csv",
                                     edit=lambda t: t.loc.__setitem__((3, "dfParticleIndex"), -1))
    out["labels_text_class"] = d / "labels_text_class.csv"
    t = pd.read_csv(out["labels"])
    t["rlnClassNumber"] = t["rlnClassNumber"].astype(object)
    t.loc[5, "rlnClassNumber"] = "two"
    t.to_csv(out["labels_text_class"], index=False)
    out["labels_truncated"] = d / "labels_truncated.csv"
    text = out["labels"].read_text()
    out["labels_truncated"].write_text(text[: len(text) // 2 + 7])
    out["labels_one_particle"] = _labels(out["store"], d / "labels_one_particle.csv", classes=np.r_[0, np.ones(39, int)])
    out["corrupt_bundle"] = d / "corrupt_bundle"
    out["corrupt_bundle"].mkdir()
    (out["corrupt_bundle"] / "bundle.json").write_text("{ not json")
    out["bundle_16A"] = d / "bundle_16A"  # a model trained at 16 Å (the store is 20 Å); only its metadata is read
    out["bundle_16A"].mkdir()
    (out["bundle_16A"] / "bundle.json").write_text('{"format": "discaflow-disca-bundle", "format_version": 1, '
                                                    '"box_vox": 16, "voxel_size_A": 16.0}')
    poses = pd.DataFrame({"dfParticleIndex": np.arange(40), "rlnClassNumber": 1 + np.arange(40) % 2, "dfHalf": 1 + np.arange(40) % 2,
                          "dfEulerRot": 0.0, "dfEulerTilt": 0.0, "dfEulerPsi": 0.0, "dfShiftX": 0.0, "dfShiftY": 0.0,
                          "dfShiftZ": 0.0, "dfScore": 1.0})
    poses.to_csv(d / "poses.csv", index=False)
    out["poses"] = d / "poses.csv"
    out["avg"] = _mrc(d / "avg.mrc", rng.standard_normal((16, 16, 16)).astype(np.float32), vs=20.0)
    out["avg_24"] = _mrc(d / "avg_24.mrc", rng.standard_normal((24, 24, 24)).astype(np.float32), vs=20.0)
    out["avg_not_cubic"] = _mrc(d / "avg_not_cubic.mrc", rng.standard_normal((12, 16, 16)).astype(np.float32), vs=20.0)
    out["a_file"] = d / "a_file"
    out["a_file"].write_text("a file, not a directory")
    out["dir"] = d
    return out


def _tree(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else "dir") for p in sorted(root.rglob("*"))}


def _fails_cleanly(capsys, argv, must_name, root):
    before = _tree(root)
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), err
    err = [line for line in err if line.startswith("discaflow")]
    assert rc == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("discaflow: error: "), err
    assert str(must_name) in err[0], (must_name, err[0])
    after = _tree(root)
    assert after.keys() == before.keys(), f"files created or removed: {sorted(after.keys() ^ before.keys())}"
    assert after == before, "an earlier output was changed"


def _check(capsys, argv, must_name, outputs, root):
    """Run the case with fresh outputs, then again over earlier good outputs (which must survive)."""
    _fails_cleanly(capsys, argv, must_name, root)
    for o in outputs:
        o.parent.mkdir(parents=True, exist_ok=True)
        o.write_bytes(b"an earlier good output\n")
    _fails_cleanly(capsys, argv, must_name, root)


MRC_CASES = ["truncated", "not_mrc", "complex", "nan", "constant", "zero_voxel_size", "smaller_than_box"]


@pytest.mark.parametrize("case", MRC_CASES)
def test_pick_bad_tomogram(files, capsys, tmp_path, case):
    out = tmp_path / "p.star"
    _check(capsys, ["pick", files[case], "--particle-radius-A", "50", "--box-vox", "16", "--out", out], files[case].name, [out], tmp_path)


@pytest.mark.parametrize("flags, name", [
    (["--voxel-size-A", "-16"], "--voxel-size-A"), (["--voxel-size-A", "0"], "--voxel-size-A"),
    (["--target-voxel-size-A", "0"], "--target-voxel-size-A"), (["--box-vox", "0"], "--box-vox"),
    (["--slab-vox", "0"], "--slab-vox"), (["--percentile", "200"], "--percentile"), (["--percentile", "nan"], "--percentile"),
    (["--particle-radius-A", "0"], "--particle-radius-A"), (["--sigma-ratio", "1"], "--sigma-ratio"),
    (["--top-n", "0"], "--top-n"), (["--threads", "0"], "--threads"), (["--box-vox", "12.5"], "--box-vox"),
    (["--polarity", "up"], "--polarity"), (["--no-such-option"], "--no-such-option"),
])
def test_pick_bad_option(files, capsys, tmp_path, flags, name):
    out = tmp_path / "p.star"
    _check(capsys, ["pick", files["good"], "--particle-radius-A", "50", *flags, "--out", out], name, [out], tmp_path)


@pytest.mark.parametrize("case", [c for c in MRC_CASES])
def test_extract_bad_tomogram(files, capsys, tmp_path, case):
    out = tmp_path / "s.h5"
    _check(capsys, ["extract", files[case], files["picks"], "--box-vox", "16", "--out", out], files[case].name, [out], tmp_path)


@pytest.mark.parametrize("case, edge", [("not_mrc", "skip"), ("picks_duplicate", "skip"), ("picks_nan", "skip"),
                                        ("picks_text", "skip"), ("picks_outside", "skip"), ("picks_one_outside", "pad")])
def test_extract_bad_picks(files, capsys, tmp_path, case, edge):
    out = tmp_path / "s.h5"
    _check(capsys, ["extract", files["good"], files[case], "--box-vox", "16", "--edge", edge, "--out", out],
           files[case].name, [out], tmp_path)


@pytest.mark.parametrize("case", ["not_hdf5", "store_empty", "same_store_twice", "store_nan"])
def test_gather_bad_store(files, capsys, tmp_path, case):
    out = tmp_path / "g.h5"
    stores = [files["store"], files["store"]] if case == "same_store_twice" else [files[case]]
    name = {"store_empty": "no particles", "same_store_twice": "store.h5"}.get(case, files.get(case, "").name if case in files else "")
    _check(capsys, ["gather", *stores, "--out", out], name, [out], tmp_path)


TINY = ["--blocks", "2", "--first-filters", "2", "--filter-step", "2", "--feature-dim", "8", "--max-iterations", "1",
        "--precision", "float32"]


@pytest.mark.parametrize("case, extra, name", [
    ("not_hdf5", [], "not_hdf5.h5"), ("store_nan", [], "store_nan.h5"), ("store_empty", [], "store_empty.h5"),
    ("store_tiny", [], "store_tiny.h5"), ("store_three", ["--pca-components", "2"], "store_three.h5"),
    ("missing", [], "missing.h5"), ("store", ["--iterations", "0"], "--iterations"),
    ("store", ["--max-iterations", "0"], "max_iterations"),
    ("store", ["--learning-rate", "-1"], "learning_rate"), ("store", ["--k-candidates", "0"], "k_candidates"),
    ("store", ["--blocks", "20"], "disca.blocks"), ("store", ["--init-from", "bundle_16A"], "bundle_16A"),
    ("store", ["--init-from", "corrupt_bundle"], "corrupt_bundle"),
])
def test_disca_bad_input(files, capsys, tmp_path, case, extra, name):
    store = files.get(case, files["dir"] / "missing.h5")
    extra = [str(files[e]) if e in files else e for e in extra]
    out = tmp_path / "result"
    _check(capsys, ["disca", store, "--state-dir", tmp_path / "state", "--out", out, *TINY, *extra], name,
           [out / "labels.csv"], tmp_path)


@pytest.mark.parametrize("stage", ["pick", "extract", "gather", "disca", "predict", "average", "embed", "export",
                                   "simulate-subtomograms", "simulate-tomograms"])
def test_every_stage_refuses_an_output_it_cannot_write(files, capsys, tmp_path, stage):
    """An output under a file (or, for file outputs, a directory) is refused before any work."""
    blocked = files["a_file"] / "x"
    f = files
    structures = ["--structures", str(f["avg"]), "--voxel-size-A", "20", "--box-vox", "16"]
    for target in ([blocked, tmp_path] if stage in ("pick", "extract", "gather", "predict", "simulate-subtomograms") else [blocked]):
        argv = {
            "pick": ["pick", f["good"], "--out", target],
            "extract": ["extract", f["good"], f["picks"], "--box-vox", "16", "--out", target],
            "gather": ["gather", f["store"], "--out", target],
            "disca": ["disca", f["store"], "--state-dir", tmp_path / "state", "--out", target, *TINY],
            "predict": ["predict", f["store"], "--bundle", f["bundle_16A"], "--out", target],
            "average": ["average", f["store"], f["labels"], "--out-dir", target],
            "embed": ["embed", f"good={f['good']}", "--store", f["store"], "--labels", f["labels"], "--poses", f["poses"],
                      "--average", f"1={f['avg']}", f"2={f['avg']}", "--out-prefix", target],
            "export": ["export", f["store"], f["labels"], "--tomograms", f"good={f['good']}", "--out-dir", target],
            "simulate-subtomograms": ["simulate", "subtomograms", *structures, "--out", target],
            "simulate-tomograms": ["simulate", "tomograms", *structures, "--out-dir", target],
        }[stage]
        _fails_cleanly(capsys, argv, str(f["a_file"] if target == blocked else tmp_path), tmp_path)
    assert not (tmp_path / "state").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only directory")
def test_a_read_only_output_directory_is_refused(files, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _fails_cleanly(capsys, ["pick", files["good"], "--out", ro / "p.star"], str(ro), tmp_path)
        _fails_cleanly(capsys, ["disca", files["store"], "--state-dir", ro / "state", *TINY], str(ro), tmp_path)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("bundle", ["corrupt_bundle", "missing_bundle", "bundle_16A"])
def test_predict_bad_bundle(files, capsys, tmp_path, bundle):
    out = tmp_path / "l.csv"
    path = files.get(bundle, tmp_path / bundle)
    _check(capsys, ["predict", files["store"], "--bundle", path, "--out", out], bundle, [out], tmp_path)


@pytest.mark.parametrize("store, labels, extra, name", [
    ("store_nan", "labels_store_nan", [], "store_nan.h5"),
    ("not_hdf5", "labels", [], "not_hdf5.h5"),
    ("store_empty", "labels_empty", [], "store_empty.h5"),
    ("store", "missing_labels", [], "missing_labels.csv"),
    ("store", "labels_other_store", [], "labels_other_store.csv"),
    ("store", "labels_out_of_range", [], "labels_out_of_range.csv"),
    ("store", "labels_negative", [], "labels_negative.csv"),
    ("store", "labels_text_class", [], "labels_text_class.csv"),
    ("store", "labels_truncated", [], "labels_truncated.csv"),
    ("store", "labels_one_particle", [], "labels_one_particle.csv"),
    ("store", "labels", ["--classes", "3"], "labels.csv"),
    ("store", "labels", ["--tilt-range", "-95", "60"], "--tilt-range"),
    ("store", "labels", ["--iterations", "0"], "--iterations"),
])
def test_average_bad_input(files, capsys, tmp_path, store, labels, extra, name):
    out = tmp_path / "avg"
    labels_path = files.get(labels, files["dir"] / f"{labels}.csv")
    _check(capsys, ["average", files[store], labels_path, "--out-dir", out, "--iterations", "1", *extra], name,
           [out / "class_01" / "summary.json", out / "class_02" / "average.mrc", out / "summary.json", out / "poses.csv"],
           tmp_path)


def _embed(f, tomogram="good", store="store", labels="labels", average=("avg", "avg"), extra=(), prefix=None):
    return ["embed", f"good={f[tomogram]}", "--store", f[store], "--labels", f[labels], "--poses", f["poses"],
            "--average", *(f"{c + 1}={f[a]}" for c, a in enumerate(average)), *extra, "--out-prefix", prefix]


@pytest.mark.parametrize("kw, name", [
    ({"tomogram": "truncated"}, "truncated.mrc"), ({"tomogram": "not_mrc"}, "not_mrc.mrc"),
    ({"tomogram": "complex"}, "complex.mrc"), ({"tomogram": "nan"}, "nan.mrc"),
    ({"tomogram": "zero_voxel_size"}, "zero_voxel_size.mrc"), ({"tomogram": "other_voxel_size"}, "other_voxel_size.mrc"),
    ({"tomogram": "smaller_than_box"}, "smaller_than_box.mrc"),
    ({"average": ("avg", "avg_24")}, "avg_24.mrc"), ({"average": ("avg_not_cubic", "avg")}, "avg_not_cubic.mrc"),
    ({"store": "store_empty", "labels": "labels_empty"}, "store_empty.h5"),
    ({"labels": "labels_other_store"}, "labels_other_store.csv"),
])
def test_embed_bad_input(files, capsys, tmp_path, kw, name):
    prefix = tmp_path / "e"
    _check(capsys, _embed(files, prefix=prefix, **kw), name,
           [tmp_path / "e_density.mrc", tmp_path / "e_labels.mrc", tmp_path / "e_overlay.png"], tmp_path)


@pytest.mark.parametrize("tomograms, store, labels, name", [
    ("other=good", "store", "labels", "labels.csv"),
    ("good=not_mrc", "store", "labels", "not_mrc.mrc"),
    ("good=smaller_than_box", "store", "labels", "outside tomogram good"),
    ("good=good", "store_empty", "labels_empty", "store_empty.h5"),
    ("good=good", "store", "labels_other_store", "labels_other_store.csv"),
    ("good=good", "store", "labels_negative", "labels_negative.csv"),
])
def test_export_bad_input(files, capsys, tmp_path, tomograms, store, labels, name):
    out = tmp_path / "export"
    tname, key = tomograms.split("=")
    _check(capsys, ["export", files[store], files[labels], "--tomograms", f"{tname}={files[key]}", "--out-dir", out], name,
           [out / "relion5_particles.star", out / "classes" / "class_01_particles.csv"], tmp_path)


def test_the_good_inputs_of_this_matrix_work(files, tmp_path):
    """The matrix's failures come from the one broken input: the same commands with good inputs run."""
    f = files
    assert main(["extract", str(f["good"]), str(f["picks_one_outside"].with_name("picks.star")), "--box-vox", "16",
                 "--out", str(tmp_path / "s.h5")]) == 0
    assert main(["gather", str(f["store"]), "--out", str(tmp_path / "g.h5")]) == 0
    assert main(["average", str(f["store"]), str(f["labels"]), "--out-dir", str(tmp_path / "avg"), "--iterations", "1",
                 "--global-iterations", "1", "--global-step-deg", "90"]) == 0
    assert main([str(a) for a in _embed(f, prefix=tmp_path / "e")]) == 0
    assert main(["export", str(f["store"]), str(f["labels"]), "--tomograms", f"good={f['good']}", "--out-dir",
                 str(tmp_path / "export")]) == 0
    for p in ("s.h5", "g.h5", "avg/summary.json", "e_density.mrc", "e_overlay.png", "export/relion5_particles.star"):
        assert (tmp_path / p).exists(), p


def test_bad_input_matrix_is_complete():
    """Every stage of the command line appears in this matrix."""
    import discaflow.cli as cli

    stages = set(cli.build_parser()._subparsers._group_actions[0].choices)
    covered = {"pick", "extract", "gather", "disca", "predict", "average", "embed", "export", "simulate"}
    assert stages <= covered, stages - covered  # (simulate's bad input is also tested in tests/test_cli.py)


# ---- one run per directory -------------------------------------------------------------------------

_HOLD = """
import sys, time
from discaflow.io.atomic import exclusive_lock
with exclusive_lock(sys.argv[1], "test"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_locked_state_directory_is_refused_and_the_lock_dies_with_its_holder(files, capsys, tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(state)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _tree(tmp_path)
        rc = main(["disca", str(files["store"]), "--state-dir", str(state), *TINY])
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("discaflow")]
        assert rc == 2 and len(err) == 1 and f"PID {holder.pid}" in err[0] and str(state) in err[0], err
        assert _tree(tmp_path) == before  # the holder's directory untouched
    finally:
        holder.kill()  # like kill -9: no clean-up code runs
        holder.wait()
    from discaflow.io.atomic import exclusive_lock

    with exclusive_lock(state, "--state-dir"):  # the kernel released the dead holder's lock
        pass


def test_export_and_average_output_directories_are_locked(files, capsys, tmp_path):
    from discaflow.io.atomic import exclusive_lock

    for argv, out in ((["average", files["store"], files["labels"], "--iterations", "1"], tmp_path / "avg"),
                      (["export", files["store"], files["labels"], "--tomograms", f"good={files['good']}"], tmp_path / "export")):
        with exclusive_lock(out, "test"):
            rc = main([str(a) for a in argv] + ["--out-dir", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("discaflow")]
        assert rc == 2 and len(err) == 1 and f"PID {os.getpid()}" in err[0], err
        assert sorted(p.name for p in out.iterdir()) == [".discaflow.lock"]


def test_a_store_is_identified_by_its_content(files, tmp_path):
    """A byte-identical copy (new modification time) is the same run; a different store is not."""
    copy = tmp_path / "copy.h5"
    shutil.copy(files["store"], copy)
    os.utime(copy, (time.time() + 100, time.time() + 100))
    with SubtomogramStore(files["store"]) as a, SubtomogramStore(copy) as b, SubtomogramStore(files["store_other"]) as c:
        assert a.fingerprint() == b.fingerprint() != c.fingerprint()


# ---- tomogram headers, read when the job graph is built -----------------------------------------

@pytest.mark.parametrize("tomograms, extra, expected", [
    (["good", "other_voxel_size"], {}, "8 Å; set target_voxel_size_A"),
    (["good", "zero_voxel_size"], {}, "zero_voxel_size.mrc has voxel size 0"),
    (["good", "not_mrc"], {}, "not_mrc.mrc"),
    (["good", "truncated"], {}, "truncated.mrc"),
    (["good"], {"extract": {"box_vox": 200}}, "extract.box_vox 200"),
    (["good"], {"pick": {"particle_radius_A": 150}}, "less than the particle diameter 300 Å"),
])
def test_tomogram_headers_are_checked_when_the_job_graph_is_built(files, tomograms, extra, expected):
    from discaflow.config import check_config
    from discaflow.datasets import dataset_tomograms

    config = check_config({"datasets": {"real": {"tomograms": [str(files[t]) for t in tomograms], **extra}}})
    with pytest.raises(InputError) as err:
        dataset_tomograms(config, "real", "results")
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
    config = check_config({"datasets": {"real": {"tomograms": [str(files["good"])], "voxel_size_A": 10.0}}})
    assert list(dataset_tomograms(config, "real", "results")) == ["good"]
    # tomograms of different voxel sizes share a dataset that has a target voxel size
    config = check_config({"datasets": {"real": {"tomograms": [str(files["good"]), str(files["other_voxel_size"])],
                                                 "target_voxel_size_A": 10.0}}})
    assert len(dataset_tomograms(config, "real", "results")) == 2


def test_a_bad_tomogram_header_stops_the_dry_run(files, tmp_path):
    import yaml

    from conftest import REPO

    config = {"results": str(tmp_path / "results"), "extract": {"box_vox": 16},
              "datasets": {"real": {"tomograms": [str(files["good"]), str(files["other_voxel_size"])]}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "snakemake")), "-s", str(REPO / "Snakefile"),
                           "-n", "--cores", "1", "--configfile", str(tmp_path / "c.yaml")], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "set target_voxel_size_A" in out, out[-2000:]
    assert not (tmp_path / "results").exists()
