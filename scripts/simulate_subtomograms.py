# Rule simulate_subtomograms: the labelled subtomogram store of one simulation section.

from discaflow.rulerun import run_rule
from discaflow.simulate.run import run_subtomograms

run_rule(snakemake, lambda: run_subtomograms(snakemake.params.section, snakemake.output[0], progress=False))
