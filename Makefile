# The two set-up commands of the README:
#   make demo   creates .venv if missing, installs, runs the bundled sample (CPU, no weights)
#   make test   creates .venv if missing, installs, lints and runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint bench clean

install:
	@bash scripts/setup.sh $(VENV)

demo: install
	$(PY) main.py demo

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_generate.py

clean:
	rm -rf demo_out .pytest_cache .ruff_cache
