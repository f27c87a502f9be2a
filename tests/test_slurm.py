"""The tiny demo through `--profile profiles/slurm` on a real one-node SLURM (started by the test)."""

import hashlib
import os
import shlex
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
    # Sized for this 2-core node (config key resources); pick keeps its 2 threads.
    "resources": {"default": {"mem_mb": 600, "runtime": 10}, "disca_round": {"threads": 1, "mem_mb": 1500, "runtime": 15},
                  "disca_result": {"threads": 1, "mem_mb": 1500}, "average_class": {"threads": 1, "mem_mb": 900}},
}
# CI-only plugin settings: this node has no accounting database (squeue for status) and 2 cores.
CI_SETTINGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4",
               "--latency-wait", "10"]


def readme_command() -> list[str]:
    """The SLURM command written in README.md (after the slurm-command marker), without `snakemake` and
    its --configfile (the test gives its own)."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("<!-- slurm-command"):].split("```bash\n", 1)[1].split("```", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[0] == "snakemake" and "--configfile" in words, words
    i = words.index("--configfile")
    return [w.replace("profiles/slurm", str(REPO / "profiles" / "slurm")) for w in words[1:i] + words[i + 2:]]


def expected_request(rule: str) -> dict:
    """What a job of ``rule`` must ask SLURM for: the test config's resources, through the workflow."""
    from discaflow.config import check_config, job_resources

    return job_resources(check_config({**yaml.safe_load(yaml.safe_dump(CONFIG)), "results": "r"}), rule)


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
    command = readme_command()
    assert command[:2] == ["--profile", str(REPO / "profiles" / "slurm")], command
    slurm = _start(slurm_dir, *command, *CI_SETTINGS)
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
        want = expected_request(rule)
        for job in js:
            assert job["JobState"] == "COMPLETED", (rule, job["JobState"])
            # the README command moves jobs to its partitions and leaves the workflow's sizes alone
            assert job["Partition"] == ("gpu-a100" if rule == "disca_round" else "short"), (rule, job["Partition"])
            assert job["NumCPUs"] == str(want["threads"]), (rule, job["NumCPUs"], want)
            assert job["MinMemoryNode"] == f"{want['mem_mb']}M", (rule, job["MinMemoryNode"], want)
            assert job["TimeLimit"] == "{:02d}:{:02d}:00".format(*divmod(want["runtime"], 60)), (rule, job["TimeLimit"], want)
            assert ("gpu:1" in job.get("TresPerJob", "")) == (want["gpu"] == 1), (rule, job.get("TresPerJob"))
    assert expected_request("pick")["threads"] == 2 and expected_request("disca_round")["gpu"] == 1
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
