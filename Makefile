# Two commands on a fresh machine: `make train` and `make test`. While editing,
# `make test-fast`: the tests that start no child process and no service. `make docs`
# builds the documentation site (mkdocs.yml) into site/, strict: a broken link fails.
# torch is installed FIRST and on its own: anything that depends on torch, installed
# before it, would pull the registry's newest CUDA build (gigabytes) instead of the
# CPU wheel this machine has. TORCH_SPEC can be overridden for a GPU box.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The tiers tests/conftest.py marks (tests/tiers.py), all left out by `make test-fast`.
FAST_TIERS := "not integration and not slurm and not postgres and not ddp and not bench"
# pytest-xdist workers, one torch thread each (tests/conftest.py); tests that share a
# module-scoped fixture or a service stay on one worker (loadgroup). WORKERS=0: serial.
WORKERS ?= 2
PYTEST := WANDB_MODE=disabled $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadgroup

.PHONY: venv train test test-fast lint typecheck format docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,sweep,docs]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python src/train.py $(ARGS)

test: $(STAMP)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m $(FAST_TIERS) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python bench/report.py --check
	$(BIN)/mkdocs build --strict

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache site
