# Rule evaluate_picking: recall and precision of a simulated dataset's picks against its ground truth.

from discaflow.pick import evaluate_picking
from discaflow.rulerun import run_rule

i, p = snakemake.input, snakemake.params
run_rule(snakemake, lambda: evaluate_picking(list(i.picks), list(i.truth), list(i.tomograms), snakemake.output[0],
                                             box_vox=p.box_vox, **p.geometry))
