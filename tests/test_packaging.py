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
        expected = dict(base)
        if env_name == "gpu":
            del expected["tensorflow-cpu"]
            expected.update(gpu_extra)
        assert pins == expected, env_name


def test_version_is_single_sourced():
    import discaflow

    assert re.fullmatch(r"\d+\.\d+\.\d+", discaflow.__version__)
