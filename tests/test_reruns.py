"""After a full run, config edits and changed inputs schedule exactly the stages they affect."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, STRUCTURES, job_counts

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(workdir, config, *args, src=REPO / "src"):
    (workdir / "c.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(workdir / "c.yaml"),
                           "--directory", str(workdir), "--cores", "2", *args], capture_output=True, text=True, env=env, timeout=900)


def _scheduled(workdir, config, src=REPO / "src") -> dict:
    """Job counts of a dry run: {rule: count}."""
    proc = _snakemake(workdir, config, "-n", "--quiet", "rules", src=src)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return job_counts(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two datasets run to the end: 'sim' (a simulation's tomograms) and 'real' (MRC files on disk)."""
    from discaflow.cli import main

    work = tmp_path_factory.mktemp("project")
    maps = [str(STRUCTURES / "3j9i.mrc"), str(STRUCTURES / "1bxn.mrc")]
    assert main(["simulate", "tomograms", "--structures", *maps, "--voxel-size-A", "16", "--count", "2", "--seed", "3",
                 "--shape-xyz-vox", "64", "64", "48", "--particles-per-class", "3", "--blobs", "2", "--vesicles", "0",
                 "--out-dir", str(work / "data")]) == 0
    config = {
        "results": str(work / "results"),
        "simulation": {"sim": {"structures": {"p20S": maps[0], "rubisco": maps[1]}, "voxel_size_A": 16.0,
                               "subtomograms": {"per_class": 4},
                               "tomograms": {"count": 1, "shape_xyz_vox": [64, 64, 48], "particles_per_class": 3,
                                             "blobs": 2, "vesicles": 0}}},
        "extract": {"box_vox": 16},
        "average": {"min_particles": 2},  # the tiny datasets' classes hold a few particles
        "disca": {"blocks": 3, "first_filters": 4, "filter_step": 4, "feature_dim": 16, "max_iterations": 2,
                  "iterations_per_job": 1, "pca_components": 1, "k_candidates": [2, 3], "warmup_iterations": 1,
                  "learning_rate": 1e-3, "precision": "float32"},
        "datasets": {"sim": {"simulated": "sim"}, "real": {"tomograms": str(work / "data" / "tomo_*.mrc")}},
    }
    run = _snakemake(work, config)
    assert run.returncode == 0, run.stderr[-3000:]
    return work, config


def _copy(config):
    return yaml.safe_load(yaml.safe_dump(config))


def test_nothing_changed_schedules_nothing(project):
    work, config = project
    assert _scheduled(work, config) == {}


def test_disca_parameter_reruns_only_disca(project):
    work, config = project
    c = _copy(config)
    c["disca"]["learning_rate"] = 2e-3
    # what follows DISCA: the classes checkpoint and its dependants (per-class averaging jobs appear
    # once the checkpoint has run again, so a dry run cannot list them)
    assert _scheduled(work, c) == {"disca_round": 4, "disca_result": 2, "classes": 2, "average_collect": 2, "embed": 3,
                                   "export": 2, "training_figure": 2, "all": 1}


def test_dataset_pick_override_reruns_that_dataset_only(project):
    work, config = project
    c = _copy(config)
    c["datasets"]["real"]["pick"] = {"threshold_t": 2.0}
    assert _scheduled(work, c) == {"pick": 2, "extract": 2, "gather_subtomograms": 1, "picks_preview": 1,
                                   "disca_round": 2, "disca_result": 1, "classes": 1, "average_collect": 1, "embed": 2,
                                   "export": 1, "training_figure": 1, "all": 1}


def test_global_pick_change_reruns_every_dataset(project):
    work, config = project
    c = _copy(config)
    c["pick"] = {"particle_radius_A": 60}
    got = _scheduled(work, c)
    assert got["pick"] == 3 and got["extract"] == 3 and got["disca_round"] == 4 and got["evaluate_picking"] == 1


def test_changed_tomogram_reruns_only_its_dataset(project):
    import mrcfile

    work, config = project
    path = work / "data" / "tomo_001.mrc"
    backup = work / "tomo_001.backup"
    shutil.copy2(path, backup)
    try:
        with mrcfile.open(path, mode="r+") as m:
            m.data[0, 0, 0] += 1.0
        got = _scheduled(work, config)
        assert got == {"pick": 1, "extract": 1, "gather_subtomograms": 1, "disca_round": 2, "disca_result": 1, "classes": 1,
                       "average_collect": 1, "embed": 2, "export": 1, "training_figure": 1, "all": 1}
    finally:
        shutil.move(backup, path)


def test_adding_a_dataset_schedules_only_its_jobs(project):
    work, config = project
    c = _copy(config)
    c["datasets"]["more"] = {"tomograms": [str(work / "data" / "tomo_000.mrc")]}
    got = _scheduled(work, c)
    assert got == {"pick": 1, "extract": 1, "gather_subtomograms": 1, "picks_preview": 1, "disca_round": 2,
                   "disca_result": 1, "classes": 1, "average_collect": 1, "embed": 1, "export": 1, "training_figure": 1,
                   "all": 1}


def _classes(work, dataset):
    import json

    return json.loads((work / "results" / dataset / "average" / "classes.json").read_text())["averaged"]


def test_averaging_parameter_reruns_only_averaging_and_what_follows(project):
    work, config = project
    c = _copy(config)
    c["average"]["iterations"] = 3
    n_classes = len(_classes(work, "sim")) + len(_classes(work, "real"))
    assert n_classes >= 2
    assert _scheduled(work, c) == {"average_class": n_classes, "average_collect": 2, "embed": 3, "export": 2, "all": 1}


def test_export_and_embed_parameters_rerun_only_their_stage(project):
    work, config = project
    c = _copy(config)
    c["datasets"]["real"]["export"] = {"voltage_kV": 200}
    assert _scheduled(work, c) == {"export": 1, "all": 1}
    c = _copy(config)
    c["embed"] = {"label_threshold": 2.0}
    assert _scheduled(work, c) == {"embed": 3, "all": 1}


def test_post_processing_outputs_of_a_full_run(project):
    import starfile

    work, config = project
    for ds, tomos in (("sim", ["tomo_000"]), ("real", ["tomo_000", "tomo_001"])):
        root = work / "results" / ds
        for c in _classes(work, ds):
            for f in ("average.mrc", "half1.mrc", "half2.mrc", "fsc.csv", "particles.csv", "summary.json"):
                assert (root / "average" / f"class_{c:02d}" / f).stat().st_size > 0
        for t in tomos:
            for f in (f"{t}_density.mrc", f"{t}_labels.mrc", f"{t}_overlay.png"):
                assert (root / "embed" / f).stat().st_size > 0
        labels = starfile.read(root / "disca" / "labels.star")
        r5 = starfile.read(root / "export" / "relion5_particles.star")
        assert len(r5["particles"]) == len(labels)
        assert (root / "disca" / "training.png").stat().st_size > 0


def test_a_second_stage_runs_on_the_particles_of_the_other_classes(project):
    """Multi-stage mining: adding a stage schedules only its jobs, and its store holds exactly the
    particles of stage 1 outside the excluded class."""
    import pandas as pd

    from discaflow.io.store import SubtomogramStore

    work, config = project
    c = _copy(config)
    labels = pd.read_csv(work / "results" / "real" / "disca" / "labels.csv")
    counts = labels["rlnClassNumber"].value_counts()
    assert len(counts) >= 2, "the tiny dataset needs two classes for this test"
    excluded = int(counts.idxmin())
    c["datasets"]["real"]["stages"] = [{"exclude_classes": [excluded]}]
    got = _scheduled(work, c)
    assert got == {"stage_subset": 1, "disca_round": 2, "disca_result": 1, "classes": 1, "average_collect": 1, "embed": 2,
                   "export": 1, "training_figure": 1, "all": 1}
    run = _snakemake(work, c)
    assert run.returncode == 0, run.stderr[-3000:]
    keep = labels.loc[labels["rlnClassNumber"] != excluded]
    with SubtomogramStore(work / "results" / "real.stage2" / "subtomograms.h5") as s, \
            SubtomogramStore(work / "results" / "real" / "subtomograms.h5") as parent:
        assert len(s) == len(keep)
        assert np.array_equal(s.column("coords"), parent.column("coords")[keep["dfParticleIndex"].to_numpy()])
    assert (work / "results" / "real.stage2" / "export" / "relion5_particles.star").exists()
    assert _scheduled(work, c) == {}


def test_a_code_update_reruns_the_stages_whose_code_changed(project, tmp_path):
    """Each rule's ``code`` param is a checksum of the modules its script imports: a changed
    re-embedding module reruns re-embedding only; a comment-only edit reruns nothing."""
    work, config = project
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "discaflow", src / "discaflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "workflow" / "schemas", tmp_path / "workflow" / "schemas")  # found beside the package
    embed = src / "discaflow" / "embed.py"
    embed.write_text(embed.read_text() + "\n# a comment\n")
    assert _scheduled(work, config, src=src) == {}
    embed.write_text(embed.read_text() + "\n\ndef _new_helper():\n    return 1\n")
    assert _scheduled(work, config, src=src) == {"embed": 3, "all": 1}
