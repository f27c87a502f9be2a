# Rule embed: class averages pasted back into one tomogram (density and label MRC, PNG overlay).
from pathlib import Path

from discaflow.rulerun import run_rule

from discaflow.embed import run_embed

run_rule(snakemake, lambda: run_embed(
    snakemake.input.tomogram, snakemake.wildcards.tomo, snakemake.input.store, snakemake.input.labels,
    snakemake.input.poses, {int(Path(a).parent.name.split("_")[1]): a for a in snakemake.input.averages},
    snakemake.output.density, snakemake.output.labels, snakemake.output.overlay, snakemake.params.embed,
    voxel_size_A=snakemake.params.geometry["voxel_size_A"]))
