# Picking (one CPU job per tomogram), extraction (one per tomogram) and the per-dataset store.


rule pick:
    input:
        tomogram=tomogram_path,
        mask=dataset_mask,
    output:
        f"{RESULTS}/{{dataset}}/picks/{{tomo}}.star",
    params:
        pick=settings("pick"),
        box_vox=lambda wc: stage_settings(config, wc.dataset, "extract")["box_vox"],
        geometry=dataset_geometry,
        code=code_version("pick.py"),
    log:
        f"{RESULTS}/logs/pick/{{dataset}}/{{tomo}}.log",
    threads: job_threads("pick")
    resources:
        **job("pick"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/pick.py"


rule extract:
    input:
        tomogram=tomogram_path,
        picks=f"{RESULTS}/{{dataset}}/picks/{{tomo}}.star",
    output:
        f"{RESULTS}/{{dataset}}/extract/{{tomo}}.h5",
    params:
        extract=settings("extract"),
        geometry=dataset_geometry,
        code=code_version("extract.py"),
    log:
        f"{RESULTS}/logs/extract/{{dataset}}/{{tomo}}.log",
    threads: job_threads("extract")
    resources:
        **job("extract"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/extract.py"


rule gather_subtomograms:
    input:
        lambda wc: expand(f"{RESULTS}/{wc.dataset}/extract/{{tomo}}.h5", tomo=DATASETS[wc.dataset]),
    output:
        f"{RESULTS}/{{dataset}}/subtomograms.h5",
    wildcard_constraints:
        dataset=PICKED_DATASETS,
    params:
        code=code_version("gather_subtomograms.py"),
    log:
        f"{RESULTS}/logs/gather_subtomograms/{{dataset}}.log",
    threads: job_threads("gather_subtomograms")
    resources:
        **job("gather_subtomograms"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/gather_subtomograms.py"


rule picks_preview:
    input:
        tomogram=lambda wc: next(iter(DATASETS[wc.dataset].values())),
        picks=lambda wc: f"{RESULTS}/{wc.dataset}/picks/{next(iter(DATASETS[wc.dataset]))}.star",
        truth=lambda wc: simulated_truth(wc.dataset)[:1],
    output:
        report(f"{RESULTS}/{{dataset}}/picks_preview.png", caption="../report/picks_preview.rst", category="Picking"),
    params:
        geometry=dataset_geometry,
        code=code_version("picks_preview.py"),
    log:
        f"{RESULTS}/logs/picks_preview/{{dataset}}.log",
    threads: job_threads("picks_preview")
    resources:
        **job("picks_preview"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/picks_preview.py"


rule evaluate_picking:
    input:
        picks=lambda wc: expand(f"{RESULTS}/{wc.dataset}/picks/{{tomo}}.star", tomo=DATASETS[wc.dataset]),
        truth=lambda wc: simulated_truth(wc.dataset),
        tomograms=lambda wc: list(DATASETS[wc.dataset].values()),
    output:
        f"{RESULTS}/{{dataset}}/picking_evaluation.json",
    params:
        box_vox=lambda wc: stage_settings(config, wc.dataset, "extract")["box_vox"],
        geometry=dataset_geometry,
        code=code_version("evaluate_picking.py"),
    log:
        f"{RESULTS}/logs/evaluate_picking/{{dataset}}.log",
    threads: job_threads("evaluate_picking")
    resources:
        **job("evaluate_picking"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/evaluate_picking.py"
