# Entry points. `make demo` brings the stack up and shows it working; `make test` runs every test.
SHELL := /bin/bash
PYTEST := .venv/bin/pytest
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install up down status clean demo test test-unit test-integration test-e2e test-ops \
        lint format bench bench-image bench-audio bench-pipeline \
        bench-provenance bench-provenance-meta bench-snapshots bench-scale

help:
	@echo "make demo | up | down | status | clean | test | test-unit | test-integration | test-e2e"
	@echo "make test-ops | lint | format | bench | bench-image | bench-audio | bench-pipeline"
	@echo "make bench-provenance | bench-provenance-meta | bench-snapshots | bench-scale"

install:
	@bash scripts/bootstrap.sh

up: install
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

status:
	@bash scripts/stack.sh status

clean: down
	rm -rf .state

demo: up
	@.venv/bin/python -m scripts.demo

test: install
	$(PYTEST)

test-unit: install
	$(PYTEST) -m unit

test-integration: install
	$(PYTEST) -m integration

test-e2e: install
	$(PYTEST) -m e2e

test-ops: install
	$(PYTEST) -m ops

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: install
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: bench-image bench-audio

bench-image: install
	bash bench/install_image_corpora.sh
	.venv/bin/python -m bench.image_bench $(BENCH_ARGS)

bench-audio: install
	bash bench/install_audio_corpora.sh
	.venv/bin/python -m bench.audio_bench $(BENCH_ARGS)

bench-pipeline: install
	bash bench/install_image_corpora.sh
	bash bench/install_audio_corpora.sh
	.venv/bin/python -m bench.pipeline_bench $(BENCH_ARGS)

bench-provenance-meta: install
	.venv/bin/python -m bench.provenance_meta_bench $(BENCH_ARGS)

bench-provenance: install
	.venv/bin/python -m bench.provenance_bench $(BENCH_ARGS)

bench-snapshots: install
	.venv/bin/python -m bench.snapshot_bench $(BENCH_ARGS)

# A million images and 100,000 tracks in 2 shards (~14 GB); BENCH_ARGS="--works 20000
# --tracks 500 --queries 20" for a quick check
bench-scale: install
	nice -n 10 .venv/bin/python -m bench.scale_bench $(BENCH_ARGS)
