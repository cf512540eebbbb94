# The README's two commands: `make demo` and `make test`. Each sets up what it needs on a fresh
# machine (a virtual environment with the package and its tools), then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PY_SRC := server tests benchmarks

.PHONY: install demo test lint unit format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@echo "== promptls check examples"
	@$(BIN)/promptls check examples; status=$$?; test $$status -le 1
	@echo
	@echo "== promptls graph examples/.claude/commands/full-review.md"
	@$(BIN)/promptls graph examples/.claude/commands/full-review.md

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SRC)
	$(BIN)/ruff format --check $(PY_SRC)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint
	$(BIN)/pytest -q

format: $(STAMP)
	$(BIN)/ruff format $(PY_SRC)
	$(BIN)/ruff check --fix $(PY_SRC)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
