# Rule picks_preview: a slab of the dataset's first tomogram with its picks (and ground truth).

from discaflow.plots import plot_picks
from discaflow.rulerun import run_rule

i = snakemake.input
run_rule(snakemake, lambda: plot_picks(i.tomogram, i.picks, snakemake.output[0], truth_star=(i.truth[0] if i.truth else None),
                                       **snakemake.params.geometry))
