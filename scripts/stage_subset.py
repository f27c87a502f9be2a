# Rule stage_subset: the particles of the previous stage not in its excluded classes.

from discaflow.rulerun import run_rule

from discaflow.extract import subset_store

run_rule(snakemake, lambda: subset_store(snakemake.input.store, snakemake.input.labels, snakemake.output[0],
                                         snakemake.params.exclude_classes))
