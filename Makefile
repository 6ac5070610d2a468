# The two commands: `make run` starts the platform, `make test` runs the test suite.
# Both set up what is missing first (apt: redis-server; uv; .venv from uv.lock).
.PHONY: setup run down test test-fast lint typecheck bench

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/workers-core up

down:
	.venv/bin/workers-core down

test: setup
	.venv/bin/python -m pytest

test-fast: setup
	.venv/bin/python -m pytest -m "not slow"

lint:
	.venv/bin/ruff check workers_core tests bench
	.venv/bin/ruff format --check workers_core tests bench

typecheck:
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/throughput.py
