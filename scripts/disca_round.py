# Rule disca_round: run (or resume) up to iterations_per_job DISCA iterations; a JSON marker on success.
import json
import sys
from pathlib import Path

from discaflow.disca import Disca, Interrupted
from discaflow.disca.checkpoint import completed_iterations, read_state
from discaflow.disca.config import from_settings
from discaflow.io.atomic import atomic_path
from discaflow.rulerun import run_rule

settings = snakemake.params.disca
round_index = int(snakemake.wildcards.round)
state_dir = Path(snakemake.params.state_dir)


def body():
    try:
        # Round 0 after a config or store change starts over; later rounds resume.
        Disca(config=from_settings(settings)).fit(snakemake.input.store, state_dir,
                                                  max_new_iterations=settings["iterations_per_job"],
                                                  init_from=settings.get("init_from"), restart_on_change=(round_index == 0))
    except Interrupted:
        print("discaflow: DISCA stopped by a signal; rerun the workflow to resume", file=sys.stderr)
        sys.exit(143)
    done = completed_iterations(state_dir)
    last = read_state(state_dir, done[-1]) if done else {}
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(json.dumps({"round": round_index, "iterations_done": len(done),
                                   "finished": bool(last.get("finished")), "k": last.get("k")}, indent=2))


run_rule(snakemake, body)
