# Rule export: particle lists for RELION 5, Warp/M (RELION 3/4) and CSV, all classes and per class.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.rulerun import run_rule  # noqa: E402

from discaflow.export import run_export  # noqa: E402
from discaflow.io.slabs import SlabReader  # noqa: E402


def body():
    sizes = {name: SlabReader(path).shape[::-1] for name, path in snakemake.params.tomograms.items()}
    run_export(snakemake.input.store, snakemake.input.labels, snakemake.input.poses, sizes,
               Path(snakemake.output.relion5).parent, snakemake.params.export)


run_rule(snakemake, body)
