# Shared helpers: configuration checking and the list of final outputs.

import discaflow
from discaflow.config import check_config, SCHEMA_PATH
from discaflow.errors import InputError

try:
    check_config(config)  # one clear line naming the key; fills defaults
except InputError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, str(SCHEMA_PATH))  # Snakemake's own validation (defaults, report metadata)

RESULTS = config["results"].rstrip("/")
# A new discaflow version reruns the stages whose results it may change (code in an imported package
# is not tracked by Snakemake's code trigger).
VERSION = discaflow.__version__


wildcard_constraints:
    sim=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    tomo=r"tomo_\d{3}",


def sim_section(wildcards):
    return config["simulation"][wildcards.sim]


def sim_structure_files(wildcards):
    return list(config["simulation"][wildcards.sim]["structures"].values())


def sim_tomogram_names(sim):
    from discaflow.simulate.run import tomogram_name

    return [tomogram_name(i) for i in range(config["simulation"][sim]["tomograms"]["count"])]


def all_outputs():
    out = []
    for sim in config["simulation"]:
        out.append(f"{RESULTS}/simulated/{sim}/subtomograms.h5")
        out += expand(f"{RESULTS}/simulated/{sim}/tomograms/{{tomo}}.mrc", tomo=sim_tomogram_names(sim))
        out.append(f"{RESULTS}/simulated/{sim}/preview.png")
    return out
