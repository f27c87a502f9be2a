# Post-processing: per-class alignment and averaging (one CPU job per class), re-embedding (one job per
# tomogram), particle lists (RELION 5, Warp/RELION 3-4, CSV) and the training figure.
# The number of classes is known only after DISCA: the checkpoint `classes` lists the classes that
# have enough particles, and the input functions below read it once it exists.


checkpoint classes:
    input:
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
    output:
        f"{RESULTS}/{{dataset}}/average/classes.json",
    params:
        min_particles=lambda wc: stage_settings(config, wc.dataset, "average")["min_particles"],
        code=code_version("classes.py"),
    log:
        f"{RESULTS}/logs/classes/{{dataset}}.log",
    threads: job_threads("classes")
    resources:
        **job("classes"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/classes.py"


rule average_class:
    input:
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
    output:
        average=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/average.mrc",
        half1=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/half1.mrc",
        half2=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/half2.mrc",
        fsc=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/fsc.csv",
        fsc_png=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/fsc.png",
        particles=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/particles.csv",
        summary=f"{RESULTS}/{{dataset}}/average/class_{{cls}}/summary.json",
    wildcard_constraints:
        cls=r"\d{2}",
    params:
        average=settings("average"),
        tilt_ranges=tilt_ranges,
        code=code_version("average_class.py"),
    log:
        f"{RESULTS}/logs/average_class/{{dataset}}/class_{{cls}}.log",
    threads: job_threads("average_class")
    resources:
        **job("average_class"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/average_class.py"


rule average_collect:
    input:
        summaries=class_outputs("summary.json"),
        averages=class_outputs("average.mrc"),
    output:
        poses=f"{RESULTS}/{{dataset}}/average/poses.csv",
        summary=f"{RESULTS}/{{dataset}}/average/summary.json",
        gallery=report(f"{RESULTS}/{{dataset}}/average/gallery.png", caption="../report/gallery.rst", category="Averages",
                       subcategory="{dataset}"),
        fsc=report(f"{RESULTS}/{{dataset}}/average/fsc.png", caption="../report/fsc.rst", category="Averages",
                   subcategory="{dataset}"),
    params:
        code=code_version("average_collect.py"),
    log:
        f"{RESULTS}/logs/average_collect/{{dataset}}.log",
    threads: job_threads("average_collect")
    resources:
        **job("average_collect"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/average_collect.py"


rule embed:
    input:
        tomogram=tomogram_path,
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
        poses=f"{RESULTS}/{{dataset}}/average/poses.csv",
        averages=class_outputs("average.mrc"),
    output:
        density=f"{RESULTS}/{{dataset}}/embed/{{tomo}}_density.mrc",
        labels=f"{RESULTS}/{{dataset}}/embed/{{tomo}}_labels.mrc",
        overlay=report(f"{RESULTS}/{{dataset}}/embed/{{tomo}}_overlay.png", caption="../report/embed.rst",
                       category="Re-embedded classes", subcategory="{dataset}"),
    params:
        embed=settings("embed"),
        geometry=dataset_geometry,
        code=code_version("embed.py"),
    log:
        f"{RESULTS}/logs/embed/{{dataset}}/{{tomo}}.log",
    threads: job_threads("embed")
    resources:
        **job("embed"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/embed.py"


rule export:
    input:
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
        poses=f"{RESULTS}/{{dataset}}/average/poses.csv",
        tomograms=lambda wc: list(DATASETS[wc.dataset].values()),
    output:
        relion5=f"{RESULTS}/{{dataset}}/export/relion5_particles.star",
        relion5_import=f"{RESULTS}/{{dataset}}/export/relion5_import.star",
        relion5_import_dir=directory(f"{RESULTS}/{{dataset}}/export/relion5_import"),
        warp=f"{RESULTS}/{{dataset}}/export/warp_particles.star",
        csv=f"{RESULTS}/{{dataset}}/export/particles.csv",
        classes=directory(f"{RESULTS}/{{dataset}}/export/classes"),
    params:
        export=settings("export"),
        tomograms=lambda wc: DATASETS[wc.dataset],
        code=code_version("export.py"),
    log:
        f"{RESULTS}/logs/export/{{dataset}}.log",
    threads: job_threads("export")
    resources:
        **job("export"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/export.py"


rule training_figure:
    input:
        history=f"{RESULTS}/{{dataset}}/disca/history.json",
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        truth=lambda wc: simulated_truth(wc.dataset),
    output:
        report(f"{RESULTS}/{{dataset}}/disca/training.png", caption="../report/training.rst", category="DISCA",
               subcategory="{dataset}"),
    wildcard_constraints:
        dataset=TRAINED_DATASETS,
    params:
        state_dir=lambda wc: f"{RESULTS}/{wc.dataset}/disca/state",
        box_vox=lambda wc: stage_settings(config, wc.dataset, "extract")["box_vox"],
        geometry=dataset_geometry,
        code=code_version("training_figure.py"),
    log:
        f"{RESULTS}/logs/training_figure/{{dataset}}.log",
    threads: job_threads("training_figure")
    resources:
        **job("training_figure"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/training_figure.py"


rule stage_subset:
    input:
        store=lambda wc: f"{RESULTS}/{STAGES[wc.dataset]['parent']}/subtomograms.h5",
        labels=lambda wc: f"{RESULTS}/{STAGES[wc.dataset]['parent']}/disca/labels.csv",
    output:
        f"{RESULTS}/{{dataset}}/subtomograms.h5",
    wildcard_constraints:
        dataset=STAGE_DATASETS,
    params:
        exclude_classes=lambda wc: STAGES[wc.dataset]["exclude_classes"],
        code=code_version("stage_subset.py"),
    log:
        f"{RESULTS}/logs/stage_subset/{{dataset}}.log",
    threads: job_threads("stage_subset")
    resources:
        **job("stage_subset"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/stage_subset.py"
