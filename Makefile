# DeskPBX: `make run` starts the PBX, `make test` runs the test suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?= serve

.PHONY: run test bench lint fmt clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/deskpbx $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check pbx app tests
	$(BIN)/ruff format --check pbx app tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.bench

lint: $(STAMP)
	$(BIN)/ruff check pbx app tests
	$(BIN)/ruff format --check pbx app tests

fmt: $(STAMP)
	$(BIN)/ruff format pbx app tests
	$(BIN)/ruff check --fix pbx app tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
