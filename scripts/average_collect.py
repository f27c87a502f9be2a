# Rule average_collect: all classes' poses in one table, the class gallery and the FSC curves.
from pathlib import Path

from discaflow.rulerun import run_rule

from discaflow.average import collect_averages

run_rule(snakemake, lambda: collect_averages({int(Path(s).parent.name.split("_")[1]): Path(s).parent
                                              for s in snakemake.input.summaries}, Path(snakemake.output.poses).parent))
