# Checkpoint classes: which classes of the labels have enough particles to be averaged.

from discaflow.rulerun import run_rule


def body():
    import json

    import pandas as pd

    from discaflow.io.atomic import atomic_path

    counts = pd.read_csv(snakemake.input.labels)["rlnClassNumber"].value_counts().sort_index()
    keep = [int(c) for c, n in counts.items() if n >= snakemake.params.min_particles]
    skipped = {int(c): int(n) for c, n in counts.items() if n < snakemake.params.min_particles}
    if skipped:
        import logging

        logging.getLogger("discaflow").warning("classes with fewer than %d particles are not averaged: %s",
                                               snakemake.params.min_particles, skipped)
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(json.dumps({"averaged": keep, "counts": {int(c): int(n) for c, n in counts.items()}}, indent=2))


run_rule(snakemake, body)
