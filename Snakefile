# discaflow — Snakemake entry point. Run `snakemake --profile profiles/local` (or profiles/slurm).
# Rules are thin: each declares its stage's configuration section as `params`, so editing a section
# reruns exactly that stage and what depends on it; the algorithms live in src/discaflow/.

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


report: "workflow/report/workflow.rst"

# The demo configuration, unless the user gives their own with --configfile (then only theirs is
# used: merging the demo's datasets into a user's project would run them too).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/pick_extract.smk"
include: "workflow/rules/disca.smk"
include: "workflow/rules/postprocess.smk"


# The executor is known only once the workflow starts: check then, before any job is submitted.
onstart:
    _check_gpu_resources()


rule all:
    input:
        all_outputs(),
    default_target: True
