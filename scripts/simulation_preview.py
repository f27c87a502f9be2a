# Rule simulation_preview: a PNG of a simulated tomogram with its ground truth and a class gallery.

from discaflow.plots import plot_simulation_preview
from discaflow.rulerun import run_rule

run_rule(snakemake, lambda: plot_simulation_preview(
    snakemake.input.tomograms[0], snakemake.input.particles[0], snakemake.input.store, snakemake.output[0]))
