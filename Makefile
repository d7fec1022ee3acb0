# Two commands on a fresh machine: `make train` and `make test`.
# torch is installed FIRST and on its own: anything that depends on torch, installed
# before it, would pull the registry's newest CUDA build (gigabytes) instead of the
# CPU wheel this machine has. TORCH_SPEC can be overridden for a GPU box.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv train test lint typecheck format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,sweep]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python src/train.py $(ARGS)

test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
