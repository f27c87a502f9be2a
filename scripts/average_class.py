# Rule average_class: align and average one class (gold-standard halves, FSC).
from pathlib import Path

from discaflow.rulerun import run_rule

from discaflow.average import run_average_class

run_rule(snakemake, lambda: run_average_class(snakemake.input.store, snakemake.input.labels, int(snakemake.wildcards.cls),
                                              Path(snakemake.output.summary).parent, snakemake.params.average,
                                              tilt_ranges=snakemake.params.tilt_ranges))
