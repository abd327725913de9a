# The two set-up commands are `make demo` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/auction-engine demo

test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check auction_engine tenders replay gateway benchmarks tests
	$(BIN)/mypy auction_engine tenders replay gateway benchmarks
	$(BIN)/lint-imports --no-cache

test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=slow MODEL_STREAM_COMMANDS=1000000 TAMPER_MUTATIONS=200 CRASH_KILLS=100 \
		SERVE_CRASH_KILLS=40 SCHEMATHESIS_MAX_EXAMPLES=100 $(BIN)/python -m pytest tests/test_model_stateful.py \
		tests/test_model_stream.py tests/test_tamper.py tests/test_crash.py tests/test_serve_crash.py \
		tests/test_schemathesis.py
	$(BIN)/python -m pytest -m slow

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.core --quick
	$(BIN)/python -m benchmarks.journal --quick
	$(BIN)/python -m benchmarks.ws_load --quick

bench: $(STAMP)
	$(BIN)/python -m benchmarks.core
	$(BIN)/python -m benchmarks.journal
	$(BIN)/python -m benchmarks.ws_load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
