# Rule average_collect: all classes' poses in one table, the class gallery and the FSC curves.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from discaflow.rulerun import run_rule  # noqa: E402

from discaflow.average import collect_averages  # noqa: E402

run_rule(snakemake, lambda: collect_averages({int(Path(s).parent.name.split("_")[1]): Path(s).parent
                                              for s in snakemake.input.summaries}, Path(snakemake.output.poses).parent))
