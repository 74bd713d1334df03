# eda_lab: two commands for learners (make lab, make test), three for developers.
# Everything runs inside .venv, created on first use from the Python 3.11+ on PATH.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LAB_ARGS ?=
PYTEST_ARGS ?=
# JupyterLab refuses to run as root without --allow-root (containers, Binder-like machines).
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: lab test lint notebooks bench clean help

help:
	@echo "make lab        open the course in JupyterLab (LAB_ARGS=... for extra options)"
	@echo "make test       lint, library tests, every notebook with nbval, the browser test"
	@echo "make notebooks  re-execute every notebook in place from a fresh kernel"
	@echo "make bench      run the benchmarks (one JSON line each)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eda_lab needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,engines]'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb $(ROOT_FLAG) $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check eda_lab tests benchmarks notebooks

test: lint
	$(BIN)/python -m pytest tests --nbval $(NOTEBOOKS) $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=120 --ExecutePreprocessor.kernel_name=python3 \
		--ExecutePreprocessor.record_timing=False $(NOTEBOOKS)

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
