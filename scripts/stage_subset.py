# Rule stage_subset: the particles of the previous stage not in its excluded classes.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.rulerun import run_rule  # noqa: E402

from discaflow.extract import subset_store  # noqa: E402

run_rule(snakemake, lambda: subset_store(snakemake.input.store, snakemake.input.labels, snakemake.output[0],
                                         snakemake.params.exclude_classes))
