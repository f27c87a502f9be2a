"""The code checksum of each workflow stage (discaflow.provenance): which edits change which stages."""

import shutil
import subprocess
import sys

from conftest import REPO

_VERSIONS = """
import glob, json, sys
from discaflow.provenance import code_version
print(json.dumps({p.split("/")[-1]: code_version(p) for p in sorted(glob.glob(sys.argv[1] + "/scripts/*.py"))}))
"""


def _versions(src):
    import json

    out = subprocess.run([sys.executable, "-c", _VERSIONS, str(REPO)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def test_an_edit_changes_exactly_the_stages_that_import_the_module(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "discaflow", src / "discaflow", ignore=shutil.ignore_patterns("__pycache__"))
    base = _versions(src)
    assert len(base) == len(list((REPO / "scripts").glob("*.py")))

    def after(rel, text):
        f = src / "discaflow" / rel
        original = f.read_text()
        f.write_text(original + text)
        try:
            new = _versions(src)
        finally:
            f.write_text(original)
        return {k for k in base if new[k] != base[k]}

    assert after("embed.py", "\n# only a comment\n") == set()
    assert after("embed.py", "\nX = 1\n") == {"embed.py"}
    pick = after("pick.py", "\nX = 1\n")  # picking, and what imports it (extraction reuses its binning)
    assert {"pick.py", "extract.py", "evaluate_picking.py"} <= pick and "disca_round.py" not in pick
    estimator = after("disca/estimator.py", "\nX = 1\n")  # reached through the lazy `from discaflow import Disca`
    assert {"disca_round.py", "disca_result.py"} <= estimator and not estimator & {"pick.py", "extract.py", "average_class.py"}
    assert after("simulate/ctf.py", "\nX = 1\n") == {"simulate_subtomograms.py", "simulate_tomogram.py"}
