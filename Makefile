# Two entry points for a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ENGINE ?= llama
PYTEST_ARGS ?=

# A native llama.cpp build segfaults in ggml_backend_amx_mul_mat on CPUs with AMX; pin the x86-64 feature set.
ifeq ($(shell uname -m),x86_64)
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	@echo "installing batchframe[test,local,notebook] (llama-cpp-python builds from source the first time: ~4 min)"
	$(BIN)/python -m pip install -q -e '.[test,local,notebook]'
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.demo-installed
ifeq ($(ENGINE),llama)
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null || { \
	  echo "installing the local-model extra (llama-cpp-python builds from source the first time: ~4 min)"; \
	  $(BIN)/python -m pip install -q -e '.[local]' || { \
	    echo ""; \
	    echo "batchframe: the local-model extra (llama-cpp-python) could not be built on this machine."; \
	    echo "See README 'Troubleshooting'. To run the demo without a model: make demo ENGINE=echo"; \
	    exit 1; }; }
endif
	$(BIN)/batchframe demo --engine $(ENGINE)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check batchframe tests benchmarks

bench: $(VENV)/.test-installed
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
