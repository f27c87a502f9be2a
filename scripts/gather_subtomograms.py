# Rule gather_subtomograms: the per-tomogram stores of a dataset -> one dataset store.

from discaflow.extract import gather_stores
from discaflow.rulerun import run_rule

run_rule(snakemake, lambda: gather_stores(list(snakemake.input), snakemake.output[0], dataset=snakemake.wildcards.dataset))
