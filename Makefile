# The two commands a newcomer needs: `make dev` (run the whole service locally) and `make test`.
# Both create .venv and install pinned dependencies on first use (torch's CPU build first, then demucs).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev test lint validate build bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned CPU torch first: an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[api,audio,gpu,local,dev]'
	$(BIN)/pip check
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/audiomixer dev $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/sam validate --lint

build: $(STAMP)
	$(BIN)/sam build

bench: $(STAMP)
	$(BIN)/audiomixer bench analyse
	$(BIN)/audiomixer bench render
	$(BIN)/audiomixer bench separate --model demucs_unittest

clean:
	rm -rf $(VENV) .aws-sam .audiomixer .pytest_cache .mypy_cache .ruff_cache
