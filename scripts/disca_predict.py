# Rule disca_predict: label a dataset with a trained bundle instead of training (one inference, two files).
from discaflow.bundle import run_predict
from discaflow.rulerun import run_rule

run_rule(snakemake, lambda: run_predict(snakemake.input.store, snakemake.input.bundle,
                                        [snakemake.output.labels, snakemake.output.star]))
