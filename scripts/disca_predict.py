# Rule disca_predict: label a dataset with a trained bundle instead of training.
import sys

from discaflow.cli import main
from discaflow.rulerun import run_rule


def body():
    for out in (snakemake.output.labels, snakemake.output.star):
        rc = main(["predict", snakemake.input.store, "--bundle", snakemake.input.bundle, "--out", out])
        if rc:
            sys.exit(rc)


run_rule(snakemake, body)
