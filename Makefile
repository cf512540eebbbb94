# The README's two commands: `make demo` and `make test`. Each sets up what it needs on a fresh
# machine (a virtual environment with the package and its tools), then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PY_SRC := server tests benchmarks

.PHONY: install demo test lint unit format clean

# The package is installed editable, which pip does not byte-compile: compiled here, or with
# PYTHONDONTWRITEBYTECODE set every start of the server or the command line compiles it again.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m compileall -q server/promptls
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
	$(MAKE) vscode-test

format: $(STAMP)
	$(BIN)/ruff format $(PY_SRC)
	$(BIN)/ruff check --fix $(PY_SRC)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Long fuzzing runs: thousands of hypothesis examples per property (HYPOTHESIS_PROFILE=fuzz),
# every pathological pattern, more seeds and longer sequences of the protocol fuzz.
.PHONY: fuzz
FUZZ_TESTS := tests/unit/test_fuzz_core.py tests/unit/test_hostile.py \
              tests/unit/test_confinement.py tests/unit/test_sizes.py \
              tests/unit/test_edit_safety.py tests/e2e/test_protocol_fuzz.py tests/e2e/test_hygiene.py

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -o timeout=0 $(FUZZ_TESTS)

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

# The VS Code extension: vscode-client/promptls-<version>.vsix with the server and its Python
# dependencies in bundled/; `make vscode-test` checks it in code-server (tests/vscode/run.sh).
.PHONY: vsix vscode-test
VSC          := vscode-client
VSIX_VERSION := $(shell sed -n 's/^  "version": "\([^"]*\)".*/\1/p' $(VSC)/package.json)
VSIX         := $(VSC)/promptls-$(VSIX_VERSION).vsix
VSC_MODULES  := $(VSC)/node_modules/.package-lock.json
VSIX_INPUTS  := $(addprefix $(VSC)/,package.json tsconfig.json eslint.config.mjs .vscodeignore \
                README.md CHANGELOG.md LICENSE scripts/bundle-server.sh) $(wildcard $(VSC)/src/*.ts) \
                pyproject.toml $(shell find server/promptls -name '*.py' -o -name py.typed)

vsix: $(VSIX)

$(VSC_MODULES): $(VSC)/package-lock.json
	cd $(VSC) && npm ci --no-audit --no-fund
	touch $@

$(VSIX): $(STAMP) $(VSC_MODULES) $(VSIX_INPUTS)
	@test "$(VSIX_VERSION)" = "$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" \
	  || { echo "$(VSC)/package.json version $(VSIX_VERSION) differs from pyproject.toml's"; exit 1; }
	cd $(VSC) && npx tsc --noEmit && npx eslint . --max-warnings 0 && npm run --silent build
	$(VSC)/scripts/bundle-server.sh $(BIN)/python .
	rm -f $(VSC)/promptls-*.vsix
	cd $(VSC) && npx --yes @vscode/vsce@3.9.2 package --no-dependencies --allow-missing-repository \
	  --out promptls-$(VSIX_VERSION).vsix

vscode-test: vsix
	tests/vscode/run.sh $(VSIX)

# Benchmarks, not part of `make test` (benchmarks/README.md): `make bench` measures the server and
# the core on a generated 1M-token workspace and writes benchmarks/results.json (BENCH_ARGS=--quick
# for fewer repetitions); `make bench-check` runs it, then fails when a figure's ratio regressed by
# more than 10 % against benchmarks/baseline.json (RESULTS=path checks a results file instead).
# `make bench-tokenizers` puts the cold index beside tiktoken, gpt-tokenizer and js-tiktoken
# counting the same files (npm installs the last two under benchmarks/.cache/; TOKENIZERS_ARGS
# for a workspace of your own, --runs N, --json PATH).
.PHONY: bench bench-check bench-tokenizers
BENCH_ARGS ?=
TOKENIZERS_ARGS ?=

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-check: $(STAMP)
	$(if $(RESULTS),,$(BIN)/python benchmarks/run.py $(BENCH_ARGS))
	$(BIN)/python benchmarks/check.py $(if $(RESULTS),--results $(RESULTS))

bench-tokenizers: $(STAMP)
	$(BIN)/python benchmarks/tokenizers.py $(TOKENIZERS_ARGS)
