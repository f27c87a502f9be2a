# Rule disca_result: labels, features and model bundle of the lowest-DDBI iteration.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.em import export_result
from discaflow.rulerun import run_rule

run_rule(snakemake, lambda: export_result(snakemake.params.state_dir, snakemake.input.store,
                                          Path(snakemake.output.labels).parent))
