# Shared helpers: configuration checking and the list of final outputs.

import os

import discaflow.config

from discaflow.config import check_config, check_yaml_file, job_resources, SCHEMA_PATH
from discaflow.datasets import dataset_sheet, dataset_tomograms, stage_settings, tomogram_name
from discaflow.errors import InputError

try:
    # YAML keeps the last of two equal keys silently: two datasets with one name would merge.
    for _path in workflow.overwrite_configfiles or [Path(workflow.basedir) / "config" / "config.yaml"]:
        check_yaml_file(_path)
    check_config(config)  # one clear line naming the key; fills defaults
except InputError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, str(SCHEMA_PATH))  # Snakemake's own validation (defaults, report metadata)

RESULTS = config["results"].rstrip("/")

# Jobs import the discaflow this workflow was checked with, also inside a rule's conda environment
# (envs/*.yaml hold the third-party packages only); local and SLURM jobs inherit the environment.
os.environ.update(PYTHONPATH=os.pathsep.join(
    [str(Path(discaflow.config.__file__).parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
))


def code_version(script):
    """A job's ``code`` param: a checksum of the discaflow modules its script imports, so that a code
    update reruns the stages whose code changed (Snakemake's code trigger sees the script only)."""
    from discaflow.provenance import code_version as checksum

    return checksum(Path(workflow.basedir) / "scripts" / script)


wildcard_constraints:
    sim=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    tomo=r"[^/]+",


def sim_section(wildcards):
    return config["simulation"][wildcards.sim]


def sim_structure_files(wildcards):
    return list(config["simulation"][wildcards.sim]["structures"].values())


def sim_tomogram_names(sim):
    return [tomogram_name(i) for i in range(config["simulation"][sim]["tomograms"]["count"])]


# dataset -> {tomogram name -> path}; problems stop the run here, before any job.
try:
    SHEETS = {ds: dataset_sheet(config, ds) for ds in config["datasets"]}  # name -> row, {} without a sheet
    DATASETS = {ds: dataset_tomograms(config, ds, RESULTS, SHEETS[ds]) for ds in config["datasets"]}
except InputError as exc:
    raise WorkflowError(str(exc)) from None


def _names_regex(names):
    import re

    # a regex matching exactly these dataset names (one that matches nothing when there are none)
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Multi-stage mining: stage k of dataset D is the dataset "D.stage<k>", made of the particles of stage
# k−1 (D itself for k = 2) that are not in its exclude_classes; it has D's tomograms and settings with the
# stage's DISCA overrides, and its own results directory. It is trained (never predicted).
STAGES = {}
for _ds, _section in list(config["datasets"].items()):
    _parent = _ds
    for _k, _stage in enumerate(_section.get("stages") or [], start=2):
        _name = f"{_ds}.stage{_k}"
        if _name in config["datasets"]:
            raise WorkflowError(f"config key 'datasets.{_name}': the name is taken by stage {_k} of dataset {_ds}; rename the dataset")
        STAGES[_name] = {"parent": _parent, "exclude_classes": list(_stage["exclude_classes"])}
        config["datasets"][_name] = {**{k: v for k, v in _section.items() if k not in ("stages", "model")},
                                     "model": None, "stages": [],
                                     "disca": {**_section.get("disca", {}), **_stage.get("disca", {})}}
        DATASETS[_name] = DATASETS[_ds]
        SHEETS[_name] = SHEETS[_ds]
        _parent = _name
STAGE_DATASETS = _names_regex(list(STAGES))
PICKED_DATASETS = _names_regex([d for d in config["datasets"] if d not in STAGES])
TRAINED_DATASETS = _names_regex([d for d, s in config["datasets"].items() if not s.get("model")])
PREDICTED_DATASETS = _names_regex([d for d, s in config["datasets"].items() if s.get("model")])


def job_threads(rule):
    """A rule's threads (config key resources.<rule>.threads; a local run caps it at --cores)."""
    return job_resources(config, rule)["threads"]


def job(rule):
    """A rule's resources from config key resources.<rule>. Declared by the rule itself, so that the
    command line's --default-resources (partition, account) cannot shrink them; cpus_per_task is the
    threads, so that SLURM grants what the job uses."""
    res = job_resources(config, rule)
    out = {"mem_mb": res["mem_mb"], "runtime": res["runtime"], "cpus_per_task": res["threads"]}
    if res["gpu"]:
        out["gpu"] = res["gpu"]
    return out


def _check_gpu_resources():
    """On SLURM, the GPU rules' effective resources (the rule's, then --set-resources) must still ask for
    the GPUs that the configuration asks for: one line before any job."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "name", None) != "slurm":
        return
    overwrite = workflow.resource_settings.overwrite_resources or {}
    gpu_rules = []
    if TRAINED_DATASETS != "(?!)":
        gpu_rules.append("disca_round")
    if PREDICTED_DATASETS != "(?!)":
        gpu_rules.append("disca_predict")
    for name in gpu_rules:
        wanted = job_resources(config, name)["gpu"]
        # --set-resources values are snakemake Resource objects holding the text given (raw)
        given = {k: getattr(v, "value", v) if getattr(v, "raw", None) is None else v.raw
                 for k, v in (overwrite.get(name) or {}).items() if k in ("gpu", "gres")}
        effective = {**job(name), **given}
        asked = str(effective.get("gpu", 0)) not in ("0", "", "None") or "gpu" in str(effective.get("gres", ""))
        if wanted and not asked:
            raise WorkflowError(
                f"resources: the {name} jobs ask for no GPU on SLURM although config key resources.{name}.gpu is "
                f"{wanted}; remove the {name}:gpu/gres override from --set-resources or the profile, or set "
                f"resources.{name}.gpu: 0 to run {name} on CPU nodes"
            )


def tomogram_path(wildcards):
    return DATASETS[wildcards.dataset][wildcards.tomo]


def sheet_row(wildcards):
    """The tomogram's row of its dataset's sheet ({} without a sheet or a tomogram wildcard)."""
    return SHEETS[wildcards.dataset].get(getattr(wildcards, "tomo", None), {})


def dataset_mask(wildcards):
    mask = sheet_row(wildcards).get("mask") or config["datasets"][wildcards.dataset].get("mask")
    return [mask] if mask else []


def settings(stage):
    return lambda wildcards: stage_settings(config, wildcards.dataset, stage)


def dataset_geometry(wildcards):
    """Voxel size (the tomogram's sheet row, else the dataset's; None: the header's) and target voxel
    size (used by picking, extraction and maps)."""
    section = config["datasets"][wildcards.dataset]
    return {"voxel_size_A": sheet_row(wildcards).get("voxel_size_A") or section["voxel_size_A"],
            "target_voxel_size_A": section["target_voxel_size_A"]}


def tilt_ranges(wildcards):
    """Tomogram name -> [tilt_min_deg, tilt_max_deg] from the dataset's sheet, where given (the others
    take the average section's tilt range)."""
    from discaflow.io.sheets import tilt_ranges as sheet_tilt_ranges

    return sheet_tilt_ranges(SHEETS[wildcards.dataset])


def simulated_truth(dataset):
    """Ground-truth STAR files of a simulated dataset (empty for real data)."""
    section = config["datasets"][dataset]
    if "simulated" not in section:
        return []
    return [f"{RESULTS}/simulated/{section['simulated']}/tomograms/{t}_particles.star" for t in DATASETS[dataset]]


def all_outputs():
    out = []
    for sim in config["simulation"]:
        out.append(f"{RESULTS}/simulated/{sim}/subtomograms.h5")
        out += expand(f"{RESULTS}/simulated/{sim}/tomograms/{{tomo}}.mrc", tomo=sim_tomogram_names(sim))
        out.append(f"{RESULTS}/simulated/{sim}/preview.png")
    for ds in config["datasets"]:
        out.append(f"{RESULTS}/{ds}/subtomograms.h5")
        if ds not in STAGES:
            out.append(f"{RESULTS}/{ds}/picks_preview.png")
            if simulated_truth(ds):
                out.append(f"{RESULTS}/{ds}/picking_evaluation.json")
        out.append(f"{RESULTS}/{ds}/disca/labels.star")
        out.append(f"{RESULTS}/{ds}/average/summary.json")
        out.append(f"{RESULTS}/{ds}/export/relion5_particles.star")
        out += expand(f"{RESULTS}/{ds}/embed/{{tomo}}_overlay.png", tomo=DATASETS[ds])
        if not config["datasets"][ds].get("model"):
            out.append(f"{RESULTS}/{ds}/disca/training.png")
    return out


# DISCA rounds (disca.smk)
def disca_settings(wildcards):
    return stage_settings(config, wildcards.dataset, "disca")


def disca_rounds(dataset):
    s = stage_settings(config, dataset, "disca")
    return max(1, -(-s["max_iterations"] // s["iterations_per_job"]))


def previous_round(wildcards):
    r = int(wildcards.round)
    return [] if r == 0 else [f"{RESULTS}/{wildcards.dataset}/disca/rounds/round_{r - 1:02d}.json"]


# classes averaged (postprocess.smk; known after the classes checkpoint)
def averaged_classes(dataset):
    import json

    with open(checkpoints.classes.get(dataset=dataset).output[0]) as fh:
        return [int(c) for c in json.load(fh)["averaged"]]


def class_outputs(name):
    return lambda wc: [f"{RESULTS}/{wc.dataset}/average/class_{c:02d}/{name}" for c in averaged_classes(wc.dataset)]
