# The two set-up commands of the README:
#   make demo   creates .venv if missing, installs what the demo needs (Python packages
#               only), runs the bundled sample (CPU, no weights)
#   make test   creates .venv if missing, installs everything the tests use (Mesa EGL, Xvfb,
#               Monado, splat-transform, test tools), lints and runs the test suite
# and for users:
#   make vr     builds Monado, an OpenXR runtime, for trying VR without a headset runtime
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-demo demo test vr lint bench clean

install:
	@bash scripts/setup.sh $(VENV)

install-demo:
	@bash scripts/setup.sh --demo $(VENV)

demo: install-demo
	$(PY) main.py demo

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

vr:
	bash scripts/build_monado.sh

bench: install
	$(PY) benchmarks/bench_generate.py

clean:
	rm -rf demo_out .pytest_cache .ruff_cache
