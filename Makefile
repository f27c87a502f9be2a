# discaflow — every target uses .venv/ in the repository root and creates it when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
# Keep TensorFlow quiet and deterministic-friendly in every target.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: venv venv-gpu demo test test-fast bench bench-simulate bench-picking bench-disca bench-disca-radial bench-disca-radial-reference bench-kcheck bench-separability bench-ceiling bench-average bench-scale bench-scale-run bench-scale-full-mstep bench-radial-subsample bench-radial-cost bench-invariance bench-speed bench-table1 bench-table1-paper bench-table1-speed clean-demo clean bench-table1-paper-convention bench-shape bench-demo-truth bench-report

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# GPU machines: swap the CPU build of TensorFlow for the CUDA one (same version).
venv-gpu: $(STAMP)
	$(BIN)/python -m pip uninstall --quiet -y tensorflow-cpu
	$(BIN)/python -m pip install --quiet 'tensorflow[and-cuda]==2.21.0'

# The whole pipeline on the embedded demo configuration (config/config.yaml), on this machine.
demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --cores 1 --report results/report.html
	@echo "demo finished: open results/report.html, or see results/ (README, sections 'The demo' and 'Outputs')"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not slurm"

bench: bench-simulate bench-picking bench-average bench-disca bench-table1 bench-speed

bench-simulate: $(STAMP)
	$(BIN)/python bench/simulate.py

clean-demo:
	rm -rf results .snakemake

clean: clean-demo
	rm -rf $(VENV) src/*.egg-info .pytest_cache

bench-picking: $(STAMP)
	$(BIN)/python bench/picking.py

bench-disca: $(STAMP)
	$(BIN)/python bench/disca.py --preset reference

# DISCA's defaults with a narrow network on the Table 1 set (needs ../shared/data/polnet for 6utj)
bench-disca-radial: $(STAMP)
	$(BIN)/python bench/disca.py --preset radial --structures 4v4r 4cr2 6utj 3j9i 1bxn

# the same with the reference network on 5 × 200 (~50 min on 2 cores in float32)
bench-disca-radial-reference: $(STAMP)
	$(BIN)/python bench/disca.py --preset radial-reference --structures 4v4r 4cr2 6utj 3j9i 1bxn

# the K check (issue #4): the same settings on 3, 5 and 8 classes, never told K (~15, 30 and 40 min on
# 2 cores); two 8-class sets: one whose eight structures are pairwise separable given the labels, and
# the first one chosen, which holds two pairs that are not (bench-separability; bench/README.md)
KCHECK = --preset radial
SET3 = 4v4r 3j9i 1bxn
SET5 = 4v4r 4cr2 6utj 3j9i 1bxn
SET8 = 4v4r 4cr2 6utj 3j9i 1qvr 2cg9 3gl1 1s3x
SET8_HARD = 4v4r 4cr2 3j9i 1bxn 3cf3 1qvr 6utj 1u6g
bench-kcheck: bench-separability
	$(BIN)/python bench/disca.py $(KCHECK) --structures $(SET3) --tag kcheck
	$(BIN)/python bench/disca.py $(KCHECK) --structures $(SET5) --tag kcheck
	$(BIN)/python bench/disca.py $(KCHECK) --structures $(SET8) --tag distinct
	$(BIN)/python bench/disca.py $(KCHECK) --structures $(SET8_HARD) --tag hard

# pairwise separability given the labels (LDA on the radial descriptors) of the K check's sets (seconds)
bench-separability: $(STAMP)
	$(BIN)/python bench/separability.py --structures $(SET3)
	$(BIN)/python bench/separability.py --structures $(SET5)
	$(BIN)/python bench/separability.py --structures $(SET8)
	$(BIN)/python bench/separability.py --structures $(SET8_HARD)

# supervised upper bound (narrow YOPO, ~10 min each) on the bench-disca set and on the Table 1 set
# (the latter needs ../shared/data/polnet); --arch reference for the reference network (~1 h on 2 cores)
bench-ceiling: $(STAMP)
	$(BIN)/python bench/ceiling.py --arch narrow --epochs 30
	$(BIN)/python bench/ceiling.py --arch narrow --epochs 30 --structures 4v4r 4cr2 6utj 3j9i 1bxn

bench-average: $(STAMP)
	$(BIN)/python bench/average.py

# what DISCA's radial steps (descriptors, warm-up clustering, split and merge tests) cost at 2k, 20k, 200k
bench-radial-cost: $(STAMP)
	$(BIN)/python bench/radial_cost.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# measured DISCA runs at 5,000, 20,000 and 50,000 (narrow network, bounded M-step; ~1 h on 2 cores) and the
# projection to 200,000 from them
bench-scale-run: $(STAMP)
	$(BIN)/python bench/scale_run.py --n 5000 --max-iterations 4 --set epochs_per_iteration=1
	$(BIN)/python bench/scale_run.py --n 20000 --max-iterations 4 --set epochs_per_iteration=1
	$(BIN)/python bench/scale_run.py --n 50000 --max-iterations 5 --set epochs_per_iteration=1
	$(BIN)/python bench/scale_run.py --project

# the published full M-step (every subtomogram each epoch) at 20,000, against bench-scale-run's bounded one
bench-scale-full-mstep: $(STAMP)
	$(BIN)/python bench/scale_run.py --n 20000 --max-iterations 4 --set epochs_per_iteration=1 train_per_cluster=0 --result scale_full_mstep_20000

# the radial warm-up on all 50,000 against a 5,000 subsample assigned to all (after bench-scale-run)
bench-radial-subsample: $(STAMP)
	$(BIN)/python bench/radial_subsample.py

# needs a finished bench/disca.py run kept with --state-dir, e.g. DISCA_RUN=/tmp/ks_3
bench-invariance: $(STAMP)
	$(BIN)/python bench/invariance.py --state-dir $(DISCA_RUN)

bench-speed: $(STAMP)
	$(BIN)/python bench/speed.py

# Table 1 grid + reference-design and classical comparators + sample-size curve (~1 h on 2 cores)
bench-table1: $(STAMP)
	$(BIN)/python bench/table1.py --preset cpu

# the paper's sizes and reference network: for a GPU machine
bench-table1-paper: $(STAMP)
	$(BIN)/python bench/table1.py --preset paper

bench-table1-speed: $(STAMP)
	$(BIN)/python bench/table1.py --preset speed --skip-sample-size --methods discaflow reference

# Table 1 like for like with the paper: its SNR convention, 5 × 400, the full grid, a supervised ceiling
# per cell (narrow network; one result file per cell; resumes cell by cell; days on 2 cores)
bench-table1-paper-convention: $(STAMP)
	$(BIN)/python bench/table1.py --preset paper-convention --skip-sample-size

# the shape-not-size set: enantiomer pairs in three sizes (paper convention, 6 × 200; SNR 0.1 and 0.03)
bench-shape: $(STAMP)
	$(BIN)/python bench/shape.py

# the demo's classes against its ground truth (complex and junk picks apart); after `make demo`
bench-demo-truth: $(STAMP)
	$(BIN)/python bench/demo_truth.py

# bench/README.md from bench/results/*.json (CI checks it is up to date)
bench-report: $(STAMP)
	$(BIN)/python bench/report.py
