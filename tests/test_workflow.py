"""The Snakemake workflow: demo dry run, configuration checking, a tiny real run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from discaflow.config import check_config, load_config
from discaflow.errors import InputError

from conftest import REPO, STRUCTURES, job_counts

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_demo_config_is_valid_and_documented():
    config = load_config(REPO / "config" / "config.yaml")
    readme = (REPO / "config" / "README.md").read_text()
    section = config["simulation"]["demo"]
    keys = {"results", *section, *section["imaging"], *section["subtomograms"], *section["tomograms"],
            "pick", *config["pick"], "extract", *config["extract"], "datasets", *config["datasets"]["demo"], "tomograms",
            "disca", *config["disca"], "average", *config["average"], "embed", *config["embed"],
            "export", *config["export"]}
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"config/README.md does not document {missing}"
    from discaflow.disca.config import markdown_table

    assert markdown_table() in readme, "config/README.md: regenerate the disca table (python -m discaflow.config --disca-table)"


def test_the_workflow_is_lint_clean():
    """`snakemake --lint`: every rule has a conda environment, rules and functions are apart, …"""
    proc = _snakemake("--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def test_demo_dry_run(tmp_path):
    proc = _snakemake("-n", "--cores", "1", "--config", f"results={tmp_path / 'results'}")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for rule, count in [("simulate_subtomograms", 1), ("simulate_tomogram", 3), ("simulation_preview", 1), ("pick", 3),
                        ("extract", 3), ("gather_subtomograms", 1), ("picks_preview", 1), ("evaluate_picking", 1),
                        ("disca_round", 2), ("disca_result", 1), ("classes", 1), ("average_collect", 1), ("embed", 3),
                        ("export", 1), ("training_figure", 1)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), out


def _demo():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(colour="red"), "config key '(top level)': unknown key 'colour'"),
    (lambda c: c["simulation"]["demo"].update(snr=-1), "config key 'simulation.demo.snr'"),
    (lambda c: c["simulation"]["demo"].update(voxel_size_A="big"), "config key 'simulation.demo.voxel_size_A': 'big' is not of type 'number'"),
    (lambda c: c["simulation"]["demo"]["imaging"].update(tilt_max_deg=95), "config key 'simulation.demo.imaging.tilt_max_deg'"),
    (lambda c: c["simulation"]["demo"]["tomograms"].update(shape_xyz_vox=[64, 64]), "config key 'simulation.demo.tomograms.shape_xyz_vox'"),
    (lambda c: c["simulation"]["demo"].pop("voxel_size_A"), "config key 'simulation.demo': 'voxel_size_A' is a required property"),
    (lambda c: c["simulation"]["demo"]["subtomograms"].update(dtype="int8"), "config key 'simulation.demo.subtomograms.dtype'"),
])
def test_schema_rejects_bad_config_with_one_line(edit, expected):
    config = _demo()
    edit(config)
    with pytest.raises(InputError) as err:
        check_config(config)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value), str(err.value)


def test_the_disca_section_is_the_engine_config():
    """The schema's disca section is generated from DiscaConfig: a checked config's section (defaults
    filled) gives the DiscaConfig of the keys set, a dataset override has the same keys without
    defaults, and a constraint of DiscaConfig is the schema's."""
    from discaflow.config import load_schema
    from discaflow.disca.config import DiscaConfig, from_settings

    config = check_config(_demo())
    assert from_settings(config["disca"]) == DiscaConfig(**{k: v for k, v in _demo()["disca"].items()
                                                           if k not in ("iterations_per_job", "init_from")})
    defs = load_schema()["$defs"]
    assert set(defs["disca_override"]["properties"]) == set(defs["disca"]["properties"])
    assert not any("default" in v for v in defs["disca_override"]["properties"].values())
    bad = _demo()
    bad["disca"]["learning_rate"] = -1
    with pytest.raises(InputError, match="disca.learning_rate"):
        check_config(bad)
    with pytest.raises(InputError, match="disca.learning_rate"):
        DiscaConfig(learning_rate=-1)


@pytest.mark.parametrize("edit, expected", [
    (lambda c, d: c["datasets"]["demo"].update(simulated="nope"), "config key 'datasets.demo.simulated': no simulation section named 'nope'"),
    (lambda c, d: c["datasets"].update(real={"tomograms": f"{d}/none/*.mrc"}), "config key 'datasets.real.tomograms': '"),
    (lambda c, d: c["datasets"].update(real={"tomograms": [f"{d}/a.mrc"]}), "config key 'datasets.real.tomograms': "),
    (lambda c, d: c["datasets"].update(real={"tomograms": f"{d}/*/x.mrc"}), "config key 'datasets.real.tomograms': "),
])
def test_dataset_problems_are_found_before_any_job(tmp_path, edit, expected):
    from discaflow.datasets import dataset_tomograms

    for sub in ("one", "two"):  # two tomograms with the same name in different folders
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.mrc").write_bytes(b"")
    config = _demo()
    edit(config, tmp_path)
    check_config(config)
    name = "real" if "real" in config["datasets"] else "demo"
    with pytest.raises(InputError) as err:
        dataset_tomograms(config, name, "results")
    message = str(err.value)
    assert message.startswith(expected) and "\n" not in message, message
    assert any(w in message for w in ("no simulation", "matches no file", "file not found", "have the same name 'x'")), message


def test_schema_fills_defaults():
    config = {"results": "r", "simulation": {"x": {"structures": {"a": "a.mrc"}, "voxel_size_A": 10}}}
    check_config(config)
    section = config["simulation"]["x"]
    assert section["box_vox"] == 24 and section["imaging"]["tilt_max_deg"] == 60 and section["tomograms"]["count"] == 3


def test_workflow_stops_on_bad_config_before_any_job(tmp_path):
    config = _demo()
    config["results"] = str(tmp_path / "results")
    config["simulation"]["demo"]["imaging"]["defocus_um"] = "far"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake("--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode != 0
    assert "config key 'simulation.demo.imaging.defocus_um': 'far' is not of type 'number'" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_duplicate_dataset_names_stop_the_run(tmp_path):
    text = (REPO / "config" / "config.yaml").read_text()
    text = text.replace("datasets:\n  demo:", "datasets:\n  demo:\n    simulated: demo\n  demo:", 1)
    (tmp_path / "c.yaml").write_text(text.replace("results: results", f"results: {tmp_path / 'results'}"))
    proc = _snakemake("-n", "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode != 0
    assert "key 'demo' appears twice" in proc.stdout + proc.stderr


@pytest.mark.slurm
def test_gpu_rule_without_gpu_on_slurm_stops_before_any_job(tmp_path):
    import shutil

    if shutil.which("sbatch") is None:
        pytest.skip("the SLURM executor plugin needs the SLURM client (slurm-client) installed")
    proc = _snakemake("--profile", str(REPO / "profiles" / "slurm"), "--set-resources", "disca_round:gpu=0",
                      "--config", f"results={tmp_path / 'results'}", "--slurm-status-command", "squeue")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "resources: the disca_round jobs ask for no GPU on SLURM although config key resources.disca_round.gpu is 1" in out, out[-2000:]
    assert not (tmp_path / "results").exists()


def test_every_rule_has_a_resources_entry():
    import re

    from discaflow.config import schema_section

    rules = {m for f in (REPO / "workflow" / "rules").glob("*.smk")
             for m in re.findall(r"^(?:rule|checkpoint) (\w+):", f.read_text(), flags=re.M)}
    assert set(schema_section("resources")["properties"]) - {"default"} == rules


def test_job_resources_precedence():
    from discaflow.config import job_resources

    builtin = job_resources(check_config({"results": "r"}), "disca_round")
    assert builtin == {"threads": 8, "mem_mb": 16000, "runtime": 720, "gpu": 1}
    config = check_config({"results": "r", "resources": {"default": {"mem_mb": 500, "runtime": 5},
                                                         "disca_round": {"mem_mb": 32000}}})
    # the rule's own key, then its built-in sizes, then the configured default, then the built-in default
    assert job_resources(config, "disca_round") == {"threads": 8, "mem_mb": 32000, "runtime": 720, "gpu": 1}
    assert job_resources(config, "pick") == {"threads": 2, "mem_mb": 500, "runtime": 5, "gpu": 0}
    assert job_resources(config, "export") == {"threads": 1, "mem_mb": 500, "runtime": 5, "gpu": 0}
    with pytest.raises(InputError, match="resources.pick"):
        check_config({"results": "r", "resources": {"pick": {"memory": 1}}})
    with pytest.raises(InputError, match="resources"):
        check_config({"results": "r", "resources": {"picking": {"mem_mb": 1000}}})


def _resources_by_rule(out: str) -> dict[str, dict[str, str]]:
    """rule -> its jobs' resources, from a dry run's printed job list."""
    found, rule = {}, None
    for line in out.splitlines():
        if line.startswith(("rule ", "checkpoint ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            found[rule] = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
    return found


def test_readme_slurm_command_moves_jobs_without_shrinking_them(tmp_path):
    """The README's override command (partitions on the command line) keeps every rule's sizes."""
    from test_slurm import readme_command

    config = _demo() | {"results": str(tmp_path / "results"), "resources": {"disca_round": {"mem_mb": 24000}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake("-n", *readme_command(), "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = _resources_by_rule(proc.stdout)
    for rule, want in [("disca_round", {"slurm_partition": "gpu-a100", "mem_mb": "24000", "runtime": "720",
                                        "cpus_per_task": "8", "gpu": "1"}),
                       ("pick", {"slurm_partition": "short", "mem_mb": "4000", "runtime": "60", "cpus_per_task": "2"}),
                       ("disca_result", {"slurm_partition": "short", "mem_mb": "16000", "cpus_per_task": "2"}),
                       ("export", {"slurm_partition": "short", "mem_mb": "4000", "cpus_per_task": "1"})]:
        assert {k: res[rule].get(k) for k in want} == want, (rule, res[rule])
    assert "gpu" not in res["pick"]


def _tiny_config(tmp_path, tomograms=2):
    return {
        "results": str(tmp_path / "results"),
        "simulation": {"tiny": {
            "structures": {"p20S": str(STRUCTURES / "3j9i.mrc"), "rubisco": str(STRUCTURES / "1bxn.mrc")},
            "voxel_size_A": 16.0, "snr": 0.1,
            "subtomograms": {"per_class": 4},
            "tomograms": {"count": tomograms, "shape_xyz_vox": [64, 64, 48], "particles_per_class": 2, "blobs": 2, "vesicles": 0},
        }},
        "extract": {"box_vox": 16},
        "disca": {"blocks": 3, "first_filters": 4, "filter_step": 4, "feature_dim": 16, "max_iterations": 2,
                  "iterations_per_job": 1, "pca_components": 2, "k_candidates": [2, 3], "warmup_iterations": 1,
                  "learning_rate": 1e-3, "precision": "float32"},
        "datasets": {"tiny": {"simulated": "tiny"}},
    }


@pytest.fixture(scope="module")
def killed_then_rerun(tmp_path_factory):
    """The tiny workflow (3 tomograms) SIGKILLed once the first tomogram's extraction is complete,
    then run to the end: (directory, job counts of the dry run after the kill). One pipeline run
    serves the kill test and the checks of a complete run's outputs."""
    import signal
    import time

    tmp_path = tmp_path_factory.mktemp("tiny_workflow")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_tiny_config(tmp_path, tomograms=3)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    # rerun-incomplete as in the profiles: the job running at the kill may have renamed its output
    # before Snakemake recorded it as finished; that output is redone, never trusted
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(tmp_path / "c.yaml"), "--directory", str(tmp_path),
           "--rerun-incomplete"]
    proc = subprocess.Popen(cmd + ["--cores", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = tmp_path / "results" / "tiny" / "extract" / "tomo_000.h5"
    deadline = time.time() + 600
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), "the run ended or timed out before the first extraction"
    time.sleep(2)  # let Snakemake record that job as finished
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    dry = subprocess.run(cmd + ["--cores", "1", "-n", "--quiet", "rules"], env=env, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    # a killed Snakemake leaves its directory lock: --unlock first, as the README says
    unlock = subprocess.run(cmd + ["--cores", "1", "--unlock"], env=env, capture_output=True, text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.run(cmd + ["--cores", "2"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    return tmp_path, job_counts(dry.stdout + dry.stderr)


@pytest.mark.slow
def test_a_killed_run_redoes_only_what_was_not_finished(killed_then_rerun):
    """After the kill, the rerun schedules only the jobs of the other tomograms and what depends on
    them (the fixture's rerun then completes)."""
    _, counts = killed_then_rerun
    # tomo_000's simulation, picking and extraction finished: they are not redone (the other two
    # tomograms' jobs may or may not have run before the kill)
    assert all(counts.get(r, 0) <= 2 for r in ("simulate_tomogram", "pick", "extract")), counts
    assert counts.get("gather_subtomograms", 0) <= 1, counts
    assert counts.get("disca_round", 0) == 2, counts


@pytest.mark.slow
def test_tiny_workflow_run(killed_then_rerun):
    """Every stage's outputs of a complete run, nothing left to do, and the HTML report."""
    tmp_path, _ = killed_then_rerun
    config = ["--configfile", str(tmp_path / "c.yaml"), "--directory", str(tmp_path)]
    root = tmp_path / "results" / "simulated" / "tiny"
    for rel in ["subtomograms.h5", "preview.png", "tomograms/tomo_000.mrc", "tomograms/tomo_001_particles.star",
                "tomograms/tomo_001_clean.mrc"]:
        assert (root / rel).stat().st_size > 0, rel
    for rel in ["subtomograms.h5", "picks/tomo_000.star", "picks/tomo_001.star", "picks_preview.png", "picking_evaluation.json",
                "disca/rounds/round_00.json", "disca/rounds/round_01.json", "disca/labels.star", "disca/labels.csv",
                "disca/bundle/bundle.json", "disca/history.json"]:
        assert (tmp_path / "results" / "tiny" / rel).stat().st_size > 0, rel
    for rel in ["average/summary.json", "average/poses.csv", "average/gallery.png", "average/fsc.png",
                "embed/tomo_000_density.mrc", "embed/tomo_001_labels.mrc", "embed/tomo_001_overlay.png",
                "export/relion5_particles.star", "export/relion5_import.star", "export/warp_particles.star",
                "export/particles.csv", "disca/training.png"]:
        assert (tmp_path / "results" / "tiny" / rel).stat().st_size > 0, rel
    # nothing to do on a second run
    again = _snakemake("-n", "--cores", "1", *config)
    assert "Nothing to be done" in again.stdout + again.stderr
    # the HTML report builds, with the post-processing figures in it
    rep = _snakemake("--cores", "1", *config, "--report", str(tmp_path / "report.html"))
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    for name in ("gallery.png", "fsc.png", "tomo_000_overlay.png", "training.png", "picks_preview.png"):
        assert name in html, name


def _blob_tomogram(path, pixel_A, header_A, shape=(64, 96, 96), spacing_A=260.0, sigma_A=25.0):
    """Dark Gaussian blobs on a grid in a tomogram of ``pixel_A`` (the header says ``header_A``)."""
    from discaflow.io.mrc import write_volume

    import numpy as np

    rng = np.random.default_rng(1)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * pixel_A for n in shape], indexing="ij")
    vol = rng.normal(0, 0.05, shape).astype(np.float32)
    for cz in np.arange(spacing_A / 1.3, shape[0] * pixel_A - spacing_A / 1.6, spacing_A):
        for cy in np.arange(spacing_A / 1.3, shape[1] * pixel_A - spacing_A / 1.6, spacing_A):
            for cx in np.arange(spacing_A / 1.3, shape[2] * pixel_A - spacing_A / 1.6, spacing_A):
                vol -= np.exp(-((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma_A ** 2)).astype(np.float32)
    write_volume(path, vol, header_A)


def test_a_tomogram_sheet_sets_each_tomograms_voxel_size_and_mask(tmp_path):
    """Two tomograms of different pixel sizes (one with a wrong header, corrected by the sheet) in one
    dataset: each is extracted at exactly the target voxel size, each tomogram's mask applies, and the
    stores gather into one."""
    from discaflow.io.store import SubtomogramStore

    data = tmp_path / "data"
    data.mkdir()
    _blob_tomogram(data / "a.mrc", 8.0, 8.0)
    _blob_tomogram(data / "b.mrc", 5.3, 1.0, shape=(96, 144, 144))  # header wrong: the sheet says 5.3 Å
    from discaflow.io.mrc import write_volume

    import numpy as np

    write_volume(data / "a_mask.mrc", np.zeros((64, 96, 96), np.float32), 8.0)  # picks nothing in a
    (tmp_path / "tomos.tsv").write_text("name\tpath\tvoxel_size_A\ttilt_min_deg\ttilt_max_deg\tmask\n"
                                        "a\tdata/a.mrc\t\t-50\t60\tdata/a_mask.mrc\nb\tdata/b.mrc\t5.3\t\t\t\n")
    config = {"results": str(tmp_path / "results"), "extract": {"box_vox": 12},
              "pick": {"particle_radius_A": 40, "threshold": "percentile", "percentile": 99.9, "slab_vox": 4},
              "datasets": {"ds": {"sheet": str(tmp_path / "tomos.tsv"), "target_voxel_size_A": 16.0}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake(str(tmp_path / "results/ds/subtomograms.h5"), "--cores", "2", "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    for name, binning in [("a", 2.0), ("b", 16.0 / 5.3)]:  # 8 Å: factor 2; 5.3 Å: factor 3 (15.9 Å), resampled
        with SubtomogramStore(tmp_path / f"results/ds/extract/{name}.h5") as s:
            assert s.voxel_size_A == pytest.approx(16.0, rel=1e-6) and s.binning == pytest.approx(binning), name
            assert (len(s) == 0) == (name == "a"), name  # a's mask excludes everything
    with SubtomogramStore(tmp_path / "results/ds/subtomograms.h5") as s:
        assert s.tomogram_names == ["a", "b"] and s.voxel_size_A == pytest.approx(16.0, rel=1e-6)
    # without a target, tomograms of different voxel sizes stop the dry run with one line
    config["datasets"]["ds"]["target_voxel_size_A"] = None
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake("-n", "--cores", "1", "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode != 0 and "set target_voxel_size_A" in proc.stdout + proc.stderr
