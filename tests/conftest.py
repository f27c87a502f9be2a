import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
STRUCTURES = REPO / "resources" / "structures"
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_structures():
    """Three shipped maps at 16 Å/voxel (fit a 24-voxel box)."""
    from discaflow.simulate.structures import load_structure

    return [load_structure(STRUCTURES / f"{n}.mrc", 16.0) for n in ("4v4r", "3j9i", "1bxn")]


def job_counts(snakemake_output: str) -> dict:
    """Job counts per rule from the "Job stats" table of a Snakemake (dry) run: {rule: count}."""
    counts = {}
    for line in snakemake_output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


# The longest modules first: `make test` runs the suite on two xdist workers, one module per worker
# at a time (--dist loadfile keeps a module's shared fixtures in one process), and starting the long
# ones first keeps one worker from idling while the other finishes a long module at the end.
LONGEST_FIRST = ("test_reruns.py", "test_slurm.py", "test_workflow.py", "test_disca.py", "test_postprocess.py",
                 "test_bench.py")  # by the 2026-12-02 clean-clone durations


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's own order is kept
