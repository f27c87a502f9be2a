# Rule disca_result: labels, features and model bundle of the result iteration.
from pathlib import Path

from discaflow.disca import export_result
from discaflow.rulerun import run_rule

run_rule(snakemake, lambda: export_result(snakemake.params.state_dir, snakemake.input.store,
                                          Path(snakemake.output.labels).parent))
