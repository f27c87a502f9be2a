# Rule average_class: align and average one class (gold-standard halves, FSC).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.rulerun import run_rule  # noqa: E402

from discaflow.average import run_average_class  # noqa: E402

run_rule(snakemake, lambda: run_average_class(snakemake.input.store, snakemake.input.labels, int(snakemake.wildcards.cls),
                                              Path(snakemake.output.summary).parent, snakemake.params.average))
