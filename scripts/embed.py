# Rule embed: class averages pasted back into one tomogram (density and label MRC, PNG overlay).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.rulerun import run_rule  # noqa: E402

from discaflow.embed import run_embed  # noqa: E402

run_rule(snakemake, lambda: run_embed(
    snakemake.input.tomogram, snakemake.wildcards.tomo, snakemake.input.store, snakemake.input.labels,
    snakemake.input.poses, {int(Path(a).parent.name.split("_")[1]): a for a in snakemake.input.averages},
    snakemake.output.density, snakemake.output.labels, snakemake.output.overlay, snakemake.params.embed))
