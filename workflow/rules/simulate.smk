# Simulation: labelled subtomogram sets and whole tomograms with ground truth (CPU).


rule simulate_subtomograms:
    input:
        sim_structure_files,
    output:
        f"{RESULTS}/simulated/{{sim}}/subtomograms.h5",
    params:
        section=sim_section,
        code=code_version("simulate_subtomograms.py"),
    log:
        f"{RESULTS}/logs/simulate_subtomograms/{{sim}}.log",
    threads: job_threads("simulate_subtomograms")
    resources:
        **job("simulate_subtomograms"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/simulate_subtomograms.py"


rule simulate_tomogram:
    input:
        sim_structure_files,
    output:
        tomogram=f"{RESULTS}/simulated/{{sim}}/tomograms/{{tomo}}.mrc",
        clean=f"{RESULTS}/simulated/{{sim}}/tomograms/{{tomo}}_clean.mrc",
        particles=f"{RESULTS}/simulated/{{sim}}/tomograms/{{tomo}}_particles.star",
    wildcard_constraints:
        tomo=r"tomo_\d{3}",
    params:
        section=sim_section,
        code=code_version("simulate_tomogram.py"),
    log:
        f"{RESULTS}/logs/simulate_tomogram/{{sim}}/{{tomo}}.log",
    threads: job_threads("simulate_tomogram")
    resources:
        **job("simulate_tomogram"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/simulate_tomogram.py"


rule simulation_preview:
    input:
        store=f"{RESULTS}/simulated/{{sim}}/subtomograms.h5",
        tomograms=lambda wc: expand(f"{RESULTS}/simulated/{wc.sim}/tomograms/{{tomo}}.mrc", tomo=sim_tomogram_names(wc.sim)),
        particles=lambda wc: expand(f"{RESULTS}/simulated/{wc.sim}/tomograms/{{tomo}}_particles.star", tomo=sim_tomogram_names(wc.sim)),
    output:
        report(
            f"{RESULTS}/simulated/{{sim}}/preview.png",
            caption="../report/simulation_preview.rst",
            category="Simulation",
        ),
    params:
        code=code_version("simulation_preview.py"),
    log:
        f"{RESULTS}/logs/simulation_preview/{{sim}}.log",
    threads: job_threads("simulation_preview")
    resources:
        **job("simulation_preview"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/simulation_preview.py"
