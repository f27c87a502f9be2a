# Rule extract: subtomograms of one tomogram at its picks -> per-tomogram store.

from discaflow.extract import run_extract
from discaflow.rulerun import run_rule

p = snakemake.params
run_rule(snakemake, lambda: run_extract(snakemake.input.tomogram, snakemake.input.picks, snakemake.output[0], p.extract,
                                        tomo_name=snakemake.wildcards.tomo, **p.geometry))
