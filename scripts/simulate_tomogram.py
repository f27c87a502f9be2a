# Rule simulate_tomogram: one simulated tomogram, its noise-free density and its ground truth.

from discaflow.rulerun import run_rule
from discaflow.simulate.run import run_tomogram

index = int(snakemake.wildcards.tomo.split("_")[-1])
out = snakemake.output
run_rule(snakemake, lambda: run_tomogram(snakemake.params.section, index, out.tomogram, out.particles, out.clean))
