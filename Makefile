# Two commands: `make run` and `make test`. Both create .venv on first use and are quiet afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The install step is the Dockerfile's too (`pip install -e .`), so `make run` proves the image's.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml examples/nox-ui-example-plugin/pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	$(PIP) install -e examples/nox-ui-example-plugin
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/nox-ui serve

# Lint, format check and types over every package (nox_ui includes pages/ and components/ through its
# symlinks), then the tests; -rs prints why anything skipped.
TYPED := nox_ui tests bench scripts

test: $(VENV)/.installed-test
	@$(BIN)/ruff check --quiet .
	@$(BIN)/ruff format --check --quiet .
	$(BIN)/mypy $(TYPED)
	$(BIN)/pytest -q -rs

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED)

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix --quiet .
	$(BIN)/ruff format --quiet .

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test,bench]'
	@touch $@ $(VENV)/.installed

# Not part of the tests: ~14 minutes (the soak alone: `python -m bench --only soak`), traffic to 127.0.0.1 only;
# rewrites docs/benchmarks.md.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
