# Rule export: particle lists for RELION 5, Warp/M (RELION 3/4) and CSV, all classes and per class.
from pathlib import Path

from discaflow.rulerun import run_rule

from discaflow.export import run_export
from discaflow.io.slabs import SlabReader


def body():
    sizes = {name: SlabReader(path).shape[::-1] for name, path in snakemake.params.tomograms.items()}
    run_export(snakemake.input.store, snakemake.input.labels, snakemake.input.poses, sizes,
               Path(snakemake.output.relion5).parent, snakemake.params.export)


run_rule(snakemake, body)
