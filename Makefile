# Every target sets itself up: a virtual env in .venv with arl installed in it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test bench bench-scaling bench-ray bench-learning lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# stable-baselines3, which only `make bench-learning` compares arl with (the `bench` extra).
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

run: $(STAMP)  ## run the dummy experiment on the embedded SQLite store
	$(BIN)/arl-run experiments/dummy.yml

# Four test workers on two cores: most tests wait on their arl-run's processes rather
# than compute, so more workers than cores fill the idle time (measured on this 2-core
# machine: 241 s serial, 190 s with -n 2, 153 s with -n 3 for the suite of 974 tests;
# for 1,123 tests 177 s with -n 3, 160 s with -n 4). Work stealing: a worker that runs out
# takes tests queued for another, so the long e2e tests do not end the run on one worker
# (1,176 tests: 170-175 s with xdist's default distribution, 156 s with worksteal).
PYTEST_ARGS ?= -n 4 --dist worksteal

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# BENCH_ARGS go to the one script of bench-scaling, bench-ray or bench-learning (--help lists them).
BENCH_ARGS ?=

bench: $(STAMP)  ## print the performance figures (never a pass/fail test), scaling with workers last
	$(BIN)/python tests/benchmarks/bench.py
	$(BIN)/python tests/benchmarks/bench_scaling.py

bench-scaling: $(STAMP)  ## aggregate steps/s against workers (about a minute on 2 cores)
	$(BIN)/python tests/benchmarks/bench_scaling.py $(BENCH_ARGS)

# Not in `make bench`, which stays quick: starting Ray clusters takes a while (3-6 s each on
# 2 cores, two clusters), and so do the 12 sweeps of 8 dummy runs timed on and beside them.
bench-ray: $(STAMP)  ## 8 dummy runs on a local 2-node Ray cluster against --parallel 2 (about 1.5 min on 2 cores)
	$(BIN)/python tests/benchmarks/bench_ray.py $(BENCH_ARGS)

bench-learning: $(BENCH_STAMP)  ## arl's DQN and PPO against stable-baselines3's on CartPole (long)
	$(BIN)/python tests/benchmarks/bench_learning.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) arl.db arl.db-* arl-checkpoints
