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

test: lint browser-deps
	$(BIN)/pytest -q

format: $(STAMP)
	$(BIN)/ruff format $(PY_SRC)
	$(BIN)/ruff check --fix $(PY_SRC)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Headless Chromium for the browser tests (the dashboard screenshot; the VS Code test drives it
# too), installed from Debian only when missing. `make dashboard` refreshes docs/dashboard.png.
.PHONY: browser-deps dashboard
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

browser-deps:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) env \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

dashboard: $(STAMP) browser-deps
	$(BIN)/pytest -q tests/e2e/test_dashboard.py
	mkdir -p docs
	cp tests/output/dashboard.png docs/dashboard.png
