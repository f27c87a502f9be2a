"""Pins agree between pyproject.toml and the conda environments."""

import re
import tomllib

import yaml

from conftest import REPO


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = (m.group(2) or "", m.group(3))
    return out


def test_conda_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = _pins(project["dependencies"])
    gpu_extra = _pins(project["optional-dependencies"]["gpu"])
    for env_name in ("cpu", "gpu"):
        env = yaml.safe_load((REPO / "envs" / f"{env_name}.yaml").read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        pins = _pins(pip)
        expected = {k: v for k, v in base.items() if not k.startswith("snakemake")}  # jobs do not run Snakemake
        if env_name == "gpu":
            del expected["tensorflow-cpu"]
            expected.update(gpu_extra)
        assert pins == expected, env_name


def test_version_is_single_sourced():
    import discaflow

    assert re.fullmatch(r"\d+\.\d+\.\d+", discaflow.__version__)


def test_the_readme_is_a_users_guide():
    """README.md stays a guide (≤ 15 KB, no commit hashes or run logs) and every link in it resolves."""
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    assert not re.search(r"\b(commit|at) [0-9a-f]{7,40}\b", text)
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (REPO / link).exists(), link


def test_the_public_api_imports_lazily():
    import subprocess
    import sys

    code = ("import sys, discaflow; assert 'tensorflow' not in sys.modules and 'sklearn' not in sys.modules; "
            "from discaflow import Disca, DiscaConfig, SubtomogramStore, load_bundle, predict_store, export_result")
    subprocess.run([sys.executable, "-c", code], check=True)
