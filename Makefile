# lwadapter: every target states what it makes. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help setup reproduce reproduce-amazon notebooks training-noise test test-other-path unit scale gpu-check paper clean benchmark-training benchmark-llm benchmark-test html

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/:/'

setup: $(STAMP)  ## .venv with the pinned set (torch==2.13.0 pinned in the same install)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0" -e ".[test]"
	touch $@

reproduce: setup  ## the study (notebooks/params/study.yaml) on MovieLens-100K, the CPU's fastest paths -> results/<dataset>/, paper/
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.runner --numerics native --params notebooks/params/study.yaml

reproduce-amazon: setup  ## the same on Amazon Electronics (study.yaml + amazon.yaml; data from ../shared)
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.runner --numerics native --params notebooks/params/study.yaml \
		--params notebooks/params/amazon.yaml

notebooks: setup  ## re-execute the committed notebooks in place with their defaults, the CI set, pinned paths -> results/runs/ci/
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.runner --inplace

training-noise: setup  ## the CI set under seeds 1 and 2 beside the committed seed 0 -> results/runs/ci/ml-100k/training_noise.csv
	for seed in 1 2; do TQDM_DISABLE=1 $(BIN)/python -m lwadapter.runner 01 02 03 04 05 06 -p seed $$seed \
		-p parameter_set ci-seed$$seed || exit 1; done
	$(BIN)/python -m lwadapter.reexecution results/runs/ci/ml-100k results/runs/ci-seed1/ml-100k results/runs/ci-seed2/ml-100k

test: setup  ## unit tests + nbval of every committed notebook on the pinned paths, results within the noise (what CI runs)
	TQDM_DISABLE=1 $(BIN)/python -m pytest

test-other-path: setup  ## the same with the notebooks re-executed on this CPU's native paths instead (retrains; ~30 min)
	LWADAPTER_NUMERICS=native TQDM_DISABLE=1 $(BIN)/python -m pytest

unit: setup  ## unit tests only (fast)
	$(BIN)/python -m pytest tests -p no:nbval -o addopts=""

scale: setup  ## CPU scale benchmark (~10 min, 1 thread) -> results/benchmarks/scale.{csv,json}, paper/figures/scale_cost.*
	TQDM_DISABLE=1 OMP_NUM_THREADS=1 $(BIN)/python -m lwadapter.bench.scale

gpu-check: setup  ## one GPU: criteria, compaction, 20 healing steps, speed on a Llama-3-8B shape -> results/gpu/*.csv
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.bench.gpu_check $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

benchmark-training: setup  ## training throughput at 2/8/32 layers per speed lever -> results/benchmarks/training_throughput.csv
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.bench.throughput

benchmark-llm: setup  ## SmolLM2 and Gemma-3 speed per lever (head, bf16, buckets), healing, eval, compact -> results/benchmarks/llm_speed.csv
	TQDM_DISABLE=1 $(BIN)/python -m lwadapter.bench.llm_speed

benchmark-test: setup  ## `make test` on a fresh clone of HEAD, timed (as long as CI) -> results/benchmarks/test_time.csv
	$(BIN)/python -m lwadapter.bench.test_time

html: setup  ## the executed notebooks as static HTML pages (stored outputs, no execution) -> results/html/index.html
	$(BIN)/python -m lwadapter.report.html

TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended latexmk

paper: paper/main.pdf  ## build paper/main.pdf with latexmk from paper/ (installs Debian TeX packages if missing)

paper/main.pdf: paper/main.tex paper/references.bib $(wildcard paper/sections/*.tex paper/tables/*.tex paper/figures/*.pdf)
	@command -v latexmk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); }
	cd paper && latexmk -pdf -interaction=nonstopmode -halt-on-error -quiet main.tex

clean:  ## remove executed notebooks and the model cache (keeps data/raw)
	rm -rf results/executed data/cache data/processed
