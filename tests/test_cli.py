"""The discaflow command line: simulate end to end, and bad input as one line with no output."""

import subprocess
import sys

import pytest

from discaflow.cli import main
from discaflow.io.star import read_star
from discaflow.io.store import SubtomogramStore

from conftest import STRUCTURES

MAPS = [str(STRUCTURES / "3j9i.mrc"), str(STRUCTURES / "1bxn.mrc")]


def test_simulate_subtomograms_and_tomograms(tmp_path):
    assert main(["simulate", "subtomograms", "--structures", *MAPS, "--voxel-size-A", "16", "--per-class", "3",
                 "--quiet", "--out", str(tmp_path / "s.h5")]) == 0
    with SubtomogramStore(tmp_path / "s.h5") as s:
        assert len(s) == 6 and s.class_names == ["3j9i", "1bxn"]
        assert s.metadata["simulation"]["imaging"]["snr_convention"] == "final_volume"
    assert main(["simulate", "subtomograms", "--structures", *MAPS, "--voxel-size-A", "16", "--per-class", "3",
                 "--snr-convention", "paper", "--quiet", "--out", str(tmp_path / "p.h5")]) == 0
    with SubtomogramStore(tmp_path / "p.h5") as s:
        assert s.metadata["simulation"]["imaging"]["snr_convention"] == "paper"
    assert main(["simulate", "tomograms", "--structures", *MAPS, "--voxel-size-A", "16", "--count", "2",
                 "--shape-xyz-vox", "64", "64", "32", "--particles-per-class", "2", "--blobs", "2",
                 "--vesicles", "0", "--out-dir", str(tmp_path / "t")]) == 0
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "tomo_000.mrc", "tomo_000_particles.star", "tomo_001.mrc", "tomo_001_particles.star"]
    assert len(read_star(tmp_path / "t" / "tomo_001_particles.star")) == 4


def _bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt.mrc"
    corrupt.write_bytes(b"\x00" * 300)
    bad_pdb = tmp_path / "bad.pdb"
    bad_pdb.write_text("HEADER    NOTHING HERE\nEND\n")
    unknown = tmp_path / "model.xyz"
    unknown.write_text("1\n")
    base = ["--voxel-size-A", "16", "--per-class", "2", "--quiet"]
    return {
        "missing structure": (["--structures", str(tmp_path / "nope.mrc"), *base], "nope.mrc"),
        "corrupt map": (["--structures", str(corrupt), *base], "corrupt.mrc"),
        "model without atoms": (["--structures", str(bad_pdb), *base], "bad.pdb"),
        "unknown file type": (["--structures", str(unknown), *base], "model.xyz"),
        "voxel size zero": (["--structures", MAPS[0], "--voxel-size-A", "0", "--per-class", "2"], "--voxel-size-A"),
        "voxel size negative": (["--structures", MAPS[0], "--voxel-size-A", "-3", "--per-class", "2"], "--voxel-size-A"),
        "box smaller than structure": (["--structures", str(STRUCTURES / "4v4r.mrc"), "--voxel-size-A", "8",
                                        "--per-class", "2"], "box_vox >= "),
        "snr not positive": (["--structures", MAPS[0], "--voxel-size-A", "16", "--snr", "0"], "--snr"),
    }


BAD_CASES = ["missing structure", "corrupt map", "model without atoms", "unknown file type", "voxel size zero",
             "voxel size negative", "box smaller than structure", "snr not positive"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_simulate_bad_input_one_line_no_output(tmp_path, capsys, case):
    cases = _bad_inputs(tmp_path)
    assert sorted(cases) == sorted(BAD_CASES)
    args, expected = cases[case]
    out = tmp_path / "out" / "s.h5"
    assert main(["simulate", "subtomograms", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("discaflow: error: ") and expected in err[0], err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_cli_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "discaflow.cli", "simulate", "subtomograms", "--structures",
                           str(tmp_path / "missing.mrc"), "--voxel-size-A", "16", "--out", str(tmp_path / "s.h5")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("discaflow: error: ")
    assert not (tmp_path / "s.h5").exists()


def test_pick_extract_gather_cli(tmp_path):
    assert main(["simulate", "tomograms", "--structures", *MAPS, "--voxel-size-A", "16", "--count", "1",
                 "--shape-xyz-vox", "96", "96", "48", "--particles-per-class", "3", "--blobs", "0",
                 "--vesicles", "0", "--out-dir", str(tmp_path)]) == 0
    tomo = str(tmp_path / "tomo_000.mrc")
    assert main(["pick", tomo, "--box-vox", "16", "--top-n", "6", "--out", str(tmp_path / "p.star")]) == 0
    assert len(read_star(tmp_path / "p.star")) == 6
    assert main(["extract", tomo, str(tmp_path / "p.star"), "--box-vox", "16", "--out", str(tmp_path / "e.h5")]) == 0
    assert main(["gather", str(tmp_path / "e.h5"), "--out", str(tmp_path / "all.h5")]) == 0
    with SubtomogramStore(tmp_path / "all.h5") as s:
        assert len(s) == 6 and s.box_vox == 16


def test_pick_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.mrc"
    bad.write_text("not a tomogram")
    assert main(["pick", str(bad), "--out", str(tmp_path / "p.star")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mrc" in err[0]
    assert not (tmp_path / "p.star").exists()


@pytest.mark.parametrize("option", ["--state-dir", "--out"])
def test_disca_refuses_an_unusable_directory_before_any_work(tmp_path, capsys, option):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for bad in (a_file, a_file / "under"):
        args = {"--state-dir": str(tmp_path / "state"), "--out": str(tmp_path / "out"), option: str(bad)}
        assert main(["disca", str(tmp_path / "missing.h5"), *[x for kv in args.items() for x in kv]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option in err[0] and "a_file" in err[0]
    assert not (tmp_path / "state").exists() and not (tmp_path / "out").exists()


def test_disca_options_are_the_engine_config():
    """`discaflow disca` has one option per DiscaConfig field; options left out keep its defaults,
    bad values are one-line errors naming the key."""
    from discaflow.cli import build_parser
    from discaflow.disca import DiscaConfig
    from discaflow.disca.config import from_arguments
    from discaflow.errors import InputError

    parse = build_parser().parse_args
    assert from_arguments(parse(["disca", "s.h5", "--state-dir", "d"])) == DiscaConfig()
    given = from_arguments(parse(["disca", "s.h5", "--state-dir", "d", "--design", "reference", "--batchnorm-samples", "0",
                                  "--k-candidates", "4", "2", "--deterministic", "--learning-rate", "1e-5"]))
    assert given == DiscaConfig(design="reference", batchnorm_samples=0, k_candidates=[2, 4], deterministic=True,
                                learning_rate=1e-5)
    for bad, key in ((["--learning-rate", "-1"], "learning_rate"), (["--k-candidates", "-2", "3"], "k_candidates"),
                     (["--blocks", "0"], "blocks"), (["--batch-size", "0"], "batch_size")):
        with pytest.raises(InputError, match=f"disca.{key}"):
            from_arguments(parse(["disca", "s.h5", "--state-dir", "d", *bad]))
