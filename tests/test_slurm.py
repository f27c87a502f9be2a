"""The tiny demo through `--profile profiles/slurm` on a real one-node SLURM (started by the test)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, STRUCTURES

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"

CONFIG = {
    "simulation": {"tiny": {"structures": {"p20S": str(STRUCTURES / "3j9i.mrc"), "rubisco": str(STRUCTURES / "1bxn.mrc")},
                            "voxel_size_A": 16.0, "subtomograms": {"per_class": 4},
                            "tomograms": {"count": 2, "shape_xyz_vox": [64, 64, 48], "particles_per_class": 2,
                                          "blobs": 2, "vesicles": 0}}},
    "extract": {"box_vox": 16},
    "disca": {"blocks": 3, "first_filters": 4, "filter_step": 4, "feature_dim": 16, "max_iterations": 2,
              "iterations_per_job": 1, "pca_components": 1, "k_candidates": [2, 3], "warmup_iterations": 1,
              "learning_rate": 1e-3, "precision": "float32", "deterministic": True},
    "datasets": {"tiny": {"simulated": "tiny"}},
}
# CI-only overrides: this node has 2 cores and no accounting database (squeue for status).
OVERRIDES = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4",
             "--latency-wait", "10",
             "--default-resources", "slurm_partition=cpu", "runtime=10", "mem_mb=1000", "cpus_per_task=1",
             "--set-resources", "disca_round:slurm_partition=gpu", "disca_round:gpu=1", "disca_round:mem_mb=2000",
             "disca_round:cpus_per_task=1", "disca_result:mem_mb=2000", "disca_result:cpus_per_task=1",
             "pick:cpus_per_task=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a one-node SLURM needs root to install and start its daemons")
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=600)
    if start.returncode != 0:
        pytest.skip(f"could not start a one-node SLURM: {(start.stderr or start.stdout).strip().splitlines()[-1:]}")
    yield state
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], timeout=60)


def _jobs() -> dict[int, dict]:
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobId" in fields:
            jobs[int(fields["JobId"])] = fields
    return jobs


def _start(workdir: Path, *extra) -> subprocess.Popen:
    """Snakemake on the tiny config in workdir, in the background (output in workdir/snakemake.log)."""
    (workdir / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "results": str(workdir / "results")}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open(workdir / "snakemake.log", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(workdir / "c.yaml"),
                                 "--directory", str(workdir), *extra], stdout=log, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen, workdir: Path) -> tuple[int, str]:
    """Wait for a _start'ed run; its return code and the tail of its log."""
    try:
        rc = proc.wait(timeout=1200)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return rc, (workdir / "snakemake.log").read_text()[-4000:]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_through_the_slurm_profile(cluster, tmp_path):
    before = max(_jobs(), default=0)
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir(), local_dir.mkdir()
    # The local run that the SLURM run's results are compared with runs at the same time: the SLURM
    # run spends most of its time waiting between status checks (the plugin polls at growing intervals),
    # so the two together take about as long as the SLURM run alone (the results are deterministic).
    local = _start(local_dir, "--profile", str(REPO / "profiles" / "local"), "--cores", "2")
    slurm = _start(slurm_dir, "--profile", str(REPO / "profiles" / "slurm"), *OVERRIDES)
    rc, tail = _finish(slurm, slurm_dir)
    local_rc, local_tail = _finish(local, local_dir)
    assert rc == 0, tail
    jobs = {k: v for k, v in _jobs().items() if k > before}
    by_rule: dict[str, list[dict]] = {}
    for job in jobs.values():
        rule = job.get("Comment", "").removeprefix("rule_").split("_wildcards")[0]
        by_rule.setdefault(rule, []).append(job)
    expected = {"simulate_tomogram": 2, "simulate_subtomograms": 1, "simulation_preview": 1, "pick": 2, "extract": 2,
                "gather_subtomograms": 1, "picks_preview": 1, "evaluate_picking": 1, "disca_round": 2, "disca_result": 1,
                "classes": 1, "average_collect": 1, "embed": 2, "export": 1, "training_figure": 1}
    assert {r: len(j) for r, j in by_rule.items() if r in expected} == expected, sorted(by_rule)
    assert len(by_rule.get("average_class", [])) >= 1, sorted(by_rule)  # one per class (data-dependent)
    for rule, js in by_rule.items():
        for job in js:
            assert job["JobState"] == "COMPLETED", (rule, job["JobState"])
            if rule == "disca_round":
                assert job["Partition"] == "gpu" and "gpu:1" in job.get("TresPerJob", ""), job
            else:
                assert job["Partition"] == "cpu", (rule, job["Partition"])
    assert local_rc == 0, local_tail
    for rel in ["tiny/picks/tomo_000.star", "tiny/picks/tomo_001.star", "tiny/disca/labels.csv",
                "tiny/disca/labels.star", "simulated/tiny/tomograms/tomo_001_particles.star", "tiny/average/poses.csv",
                "tiny/export/relion5_particles.star", "tiny/export/warp_particles.star"]:
        a, b = slurm_dir / "results" / rel, local_dir / "results" / rel
        assert a.exists() and _digest(a) == _digest(b), rel
    import json

    def history(d):  # timings differ between runs; K, DDBI and agreement must not
        return [{k: h[k] for k in ("k", "ddbi", "agreement")} for h in json.loads((d / "results/tiny/disca/history.json").read_text())]

    assert history(slurm_dir) == history(local_dir)
