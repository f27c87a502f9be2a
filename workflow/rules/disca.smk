# DISCA: the EM iterations as a chain of GPU jobs ("rounds" of iterations_per_job iterations each,
# a static DAG: round r waits for round r-1; rounds after convergence do nothing), then a CPU job that
# exports the lowest-DDBI iteration. The per-iteration state lives in {results}/{dataset}/disca/state,
# which is not a declared output: Snakemake never deletes it, so a killed round resumes from the last
# complete iteration when it is run again.


rule disca_round:
    input:
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        previous=previous_round,
    output:
        f"{RESULTS}/{{dataset}}/disca/rounds/round_{{round}}.json",
    wildcard_constraints:
        round=r"\d{2}",
        dataset=TRAINED_DATASETS,
    params:
        disca=disca_settings,
        state_dir=lambda wc: f"{RESULTS}/{wc.dataset}/disca/state",
        code=code_version("disca_round.py"),
    log:
        f"{RESULTS}/logs/disca_round/{{dataset}}/round_{{round}}.log",
    threads: job_threads("disca_round")
    resources:
        **job("disca_round"),
    conda:
        "../../envs/gpu.yaml"
    script:
        "../../scripts/disca_round.py"


rule disca_result:
    input:
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        last=lambda wc: f"{RESULTS}/{wc.dataset}/disca/rounds/round_{disca_rounds(wc.dataset) - 1:02d}.json",
    output:
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
        star=f"{RESULTS}/{{dataset}}/disca/labels.star",
        features=f"{RESULTS}/{{dataset}}/disca/features.h5",
        history=f"{RESULTS}/{{dataset}}/disca/history.json",
        bundle=directory(f"{RESULTS}/{{dataset}}/disca/bundle"),
    wildcard_constraints:
        dataset=TRAINED_DATASETS,
    params:
        state_dir=lambda wc: f"{RESULTS}/{wc.dataset}/disca/state",
        code=code_version("disca_result.py"),
    log:
        f"{RESULTS}/logs/disca_result/{{dataset}}.log",
    threads: job_threads("disca_result")
    resources:
        **job("disca_result"),
    conda:
        "../../envs/cpu.yaml"
    script:
        "../../scripts/disca_result.py"


rule disca_predict:
    input:
        store=f"{RESULTS}/{{dataset}}/subtomograms.h5",
        bundle=lambda wc: config["datasets"][wc.dataset]["model"],
    output:
        labels=f"{RESULTS}/{{dataset}}/disca/labels.csv",
        star=f"{RESULTS}/{{dataset}}/disca/labels.star",
    wildcard_constraints:
        dataset=PREDICTED_DATASETS,
    params:
        code=code_version("disca_predict.py"),
    log:
        f"{RESULTS}/logs/disca_predict/{{dataset}}.log",
    threads: job_threads("disca_predict")
    resources:
        **job("disca_predict"),
    conda:
        "../../envs/gpu.yaml"
    script:
        "../../scripts/disca_predict.py"
