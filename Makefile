# eda_lab: two commands for learners (make lab, make test), a few more for developers.
# Everything runs inside .venv, created on first use from the Python 3.11+ on PATH, with the
# exact versions of constraints.txt (the stored notebook outputs nbval compares depend on them).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints.txt
# One stamp per extra, so `make lab` (learners: no test or browser tools) and `make test`
# (everything) can follow each other in either order.
LAB_STAMP := $(VENV)/.installed-lab
DEV_STAMP := $(VENV)/.installed-dev
# setuptools warns on every editable install that a folder named like the package may shadow
# it; that is this repository's layout on purpose, so the warning says nothing here.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -c $(CONSTRAINTS)
LAB_ARGS ?=
PYTEST_ARGS ?=
# JupyterLab refuses to run as root without --allow-root (containers, Binder-like machines);
# added once, unless LAB_ARGS has it already.
ROOT_FLAG := $(if $(findstring --allow-root,$(LAB_ARGS)),,$(shell [ "$$(id -u)" = 0 ] && echo --allow-root))
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
CONSTRAINTS_VENV := build/constraints-venv
CONSTRAINTS_FROM ?=

# The two seed widgets as standalone web apps (Voila, bound to 127.0.0.1): `make apps` lists
# both, `make voila APP=outbox` or `APP=saga` serves one. PORT picks the port.
APPS := outbox=outbox_visualizer saga=saga_stepper
APP ?= outbox
PORT ?= 8866
APP_NOTEBOOK = $(patsubst $(APP)=%,%,$(filter $(APP)=%,$(APPS)))
VOILA := $(BIN)/voila --no-browser --Voila.ip=127.0.0.1 --port=$(PORT) --Voila.port_retries=0

.PHONY: lab test lint notebooks bench constraints clean help apps voila

help:
	@echo "make lab          open the course in JupyterLab (LAB_ARGS=... for extra options)"
	@echo "make test         lint, library tests, every notebook with nbval, the browser test"
	@echo "make notebooks    re-execute every notebook in place from a fresh kernel"
	@echo "make apps         the Outbox Visualizer and the Saga Stepper as web apps (Voila)"
	@echo "make voila APP=outbox|saga   one of them alone (PORT=8866)"
	@echo "make bench        run the benchmarks (one JSON line each)"
	@echo "make constraints  re-resolve constraints.txt on purpose (see its header)"

define check_python
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eda_lab needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
endef

define make_venv
	$(check_python)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
endef

$(LAB_STAMP): pyproject.toml $(CONSTRAINTS)
	$(make_venv)
	$(PIP_INSTALL) -e '.[lab]'
	touch $@

$(DEV_STAMP): pyproject.toml $(CONSTRAINTS)
	$(make_venv)
	$(PIP_INSTALL) -e '.[dev,engines]'
	touch $@

# Served from the repository root, so learners can browse eda_lab/ and data/ beside the
# notebooks; the first notebook opens.
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. notebooks/00_start_here.ipynb $(ROOT_FLAG) $(LAB_ARGS)

apps: $(LAB_STAMP)
	$(VOILA) apps

voila: $(LAB_STAMP)
	@test -n "$(APP_NOTEBOOK)" || { echo "APP must be one of: outbox saga (got '$(APP)')"; exit 2; }
	$(VOILA) apps/$(APP_NOTEBOOK).ipynb

lint: $(DEV_STAMP)
	$(BIN)/ruff check eda_lab tests benchmarks notebooks apps tools

# The tests, every docstring example in the package, and every notebook's stored outputs.
test: lint
	$(BIN)/python -m pytest tests eda_lab --doctest-modules --nbval $(NOTEBOOKS) $(PYTEST_ARGS)

# nbconvert gives each kernel CurveZMQ keys (its kernelspec says it supports them): same
# results, and ipykernel no longer warns once per notebook that TCP is unencrypted. Every
# solution runs (so it is known to work), then loses its outputs: they would give the answer
# away wherever hidden cells show (tools/strip_solutions.py). NOTEBOOKS=... runs only some.
notebooks: $(DEV_STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=120 --ExecutePreprocessor.kernel_name=python3 \
		--ExecutePreprocessor.record_timing=False --KernelManager.transport_encryption=auto \
		$(NOTEBOOKS)
	$(BIN)/python tools/strip_solutions.py $(NOTEBOOKS)

bench: $(DEV_STAMP)
	@for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Resolves the whole `dev` + `engines` environment afresh in a throwaway venv and pins every package of it
# (pip and setuptools too) in constraints.txt, keeping the file's header. The newest versions
# pyproject allows, unless CONSTRAINTS_FROM=file pins some (CONSTRAINTS_FROM=constraints.txt
# keeps today's pins and resolves only what was added). Then: make notebooks, make test, and
# review the notebooks' diffs before committing.
constraints:
	$(check_python)
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools $(if $(CONSTRAINTS_FROM),-c $(CONSTRAINTS_FROM))
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet '.[dev,engines]' $(if $(CONSTRAINTS_FROM),-c $(CONSTRAINTS_FROM))
	{ sed '/^$$/q' $(CONSTRAINTS); \
	  $(CONSTRAINTS_VENV)/bin/python -c 'import platform; print("# resolved with Python", platform.python_version(), "on", platform.system(), platform.machine())'; \
	  $(CONSTRAINTS_VENV)/bin/python -m pip freeze --all --exclude eda_lab; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(CONSTRAINTS_VENV)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
