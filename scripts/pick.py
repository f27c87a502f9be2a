# Rule pick: DoG picking of one tomogram -> STAR particle table.

from discaflow.pick import run_pick
from discaflow.rulerun import run_rule

p = snakemake.params
run_rule(snakemake, lambda: run_pick(snakemake.input.tomogram, snakemake.output[0], p.pick, box_vox=p.box_vox,
                                     mask=(snakemake.input.mask[0] if snakemake.input.mask else None),
                                     threads=snakemake.threads, tomo_name=snakemake.wildcards.tomo, **p.geometry))
