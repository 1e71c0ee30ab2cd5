# Two commands do all set-up on a fresh machine:
#   make demo   install, prepare the embedded data, run the demo plan (configs/batch/demo.yaml:
#               every notebook), write reports/index.html
#   make test   install, then the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WB := $(VENV)/bin/workbench
STAMP := $(VENV)/.installed
export WORKBENCH_CACHE ?= $(CURDIR)/data/cache
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system demo test test-fast lab lint clean peer

install: $(STAMP) system

# Python side: torch first, pinned, so pip takes the CPU wheel; then the project.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(WB) setup
	touch $(STAMP)

# Debian side (only as root; otherwise say what is missing): chromium for the browser checks,
# slurm-wlm and munge for the test suite's single-node SLURM.
DEBS := chromium slurm-wlm munge
system:
	@missing=""; for cmd in chromium sbatch munged; do command -v $$cmd >/dev/null || missing=1; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBS); \
	else echo "note: apt-get install $(DEBS) as root; browser and SLURM tests will skip"; fi

demo: install
	$(WB) data prepare
	$(WB) demo

test: install peer
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow"

# JupyterLab on notebooks/ with the workbench kernel; prints the URL (PORT=8888 by default)
PORT ?= 8888
lab: install
	$(WB) lab notebooks --port $(PORT)

lint: install
	$(VENV)/bin/ruff check workbench tests benchmarks

clean:
	rm -rf runs reports data .pytest_cache

# Graph-building benchmark against anemoi-graphs, which lives in its own venv (never in .venv);
# torch is pinned in the same pip command so pip keeps the CPU wheel. Extras anemoi-graphs 0.9.0
# needs here: tri (trimesh, for TriNodes/StretchedTriNodes), anemoi and xarray (its node modules
# import anemoi.datasets and netCDF4 on import).
ANEMOI_VENV := .venv-anemoi
ANEMOI_STAMP := $(ANEMOI_VENV)/.installed

.PHONY: bench-graphs

$(ANEMOI_STAMP):
	$(PYTHON) -m venv $(ANEMOI_VENV) && $(ANEMOI_VENV)/bin/pip install --quiet torch==2.13.0 'anemoi-graphs[anemoi,tri,xarray]==0.9.0'
	touch $(ANEMOI_STAMP)

.venv-anemoi: $(ANEMOI_STAMP)

# The newest anemoi releases (graphs 0.9.8, models 0.19.0) in a second venv: they need
# torch<2.11, which PyPI has only as a CUDA build (about 8 GB, 2 min here); never in .venv.
ANEMOI_LATEST_VENV := .venv-anemoi-latest
ANEMOI_LATEST_STAMP := $(ANEMOI_LATEST_VENV)/.installed

$(ANEMOI_LATEST_STAMP):
	$(PYTHON) -m venv $(ANEMOI_LATEST_VENV) && $(ANEMOI_LATEST_VENV)/bin/pip install --quiet 'torch==2.10.*' 'anemoi-graphs[anemoi,tri,xarray]==0.9.8' 'anemoi-models==0.19.0'
	touch $(ANEMOI_LATEST_STAMP)

# anemoi in venvs of their own: the peers of the benchmarks and of the interop tests, the
# releases pinned before (.venv-anemoi) and the newest (.venv-anemoi-latest). Where one cannot
# be installed, the tests that need it are skipped with the reason.
peer:
	-@$(MAKE) --no-print-directory $(ANEMOI_STAMP)
	-@$(MAKE) --no-print-directory $(ANEMOI_LATEST_STAMP)

bench-graphs: $(STAMP) $(ANEMOI_STAMP)
	$(PY) benchmarks/graph_build.py

# Training-step benchmark against anemoi-models' graph transformer, added to .venv-anemoi
# (torch pinned in the same pip command so pip keeps the CPU wheel).
ANEMOI_MODELS_STAMP := $(ANEMOI_VENV)/.installed-models

.PHONY: bench-train-step

$(ANEMOI_MODELS_STAMP): $(ANEMOI_STAMP)
	$(ANEMOI_VENV)/bin/pip install --quiet torch==2.13.0 'anemoi-models==0.13.0'
	touch $(ANEMOI_MODELS_STAMP)

bench-train-step: $(STAMP) $(ANEMOI_MODELS_STAMP)
	$(PY) benchmarks/train_step.py
