# The two set-up commands are `make demo` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-quick clean browser fonts redis
CHROMIUM ?= /usr/bin/chromium
DEJAVU ?= /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
REDIS_SERVER ?= /usr/bin/redis-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make demo STAY=1` keeps the service (and the web room pages it prints) up after the
# results, until Ctrl-C; DEMO_ARGS passes more options (e.g. DEMO_ARGS="--seconds 180").
demo: $(STAMP)
	$(BIN)/auction-engine demo $(if $(STAY),--stay) $(DEMO_ARGS)

# Debian's Chromium for the web room's browser tests (Playwright drives it; never
# `playwright install`). Outside CI a failed install only skips those tests; in CI they fail.
browser:
	@test -x $(CHROMIUM) || { echo "installing chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| [ "$$CI" != "true" ]; }

# Debian's redis-server for the scale-out tests (each starts a private one on loopback).
# Outside CI a failed install only skips those tests; in CI it fails the run.
redis:
	@test -x $(REDIS_SERVER) || { echo "installing redis-server with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) \
		|| [ "$$CI" != "true" ]; }

# Debian's DejaVu fonts: the tenders' PDF minutes embed them (replay/minutes_render.py).
fonts:
	@test -f $(DEJAVU) || { echo "installing fonts-dejavu-core with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core) \
		|| [ "$$CI" != "true" ]; }

test: $(STAMP) lint browser redis fonts
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check auction_engine tenders grouped_purchases replay gateway benchmarks tests
	$(BIN)/mypy auction_engine tenders grouped_purchases replay gateway benchmarks
	$(BIN)/lint-imports --no-cache

test-slow: $(STAMP) redis
	HYPOTHESIS_PROFILE=slow MODEL_STREAM_COMMANDS=1000000 TAMPER_MUTATIONS=200 CRASH_KILLS=100 \
		SERVE_CRASH_KILLS=40 REDIS_SERVE_KILLS=30 REDIS_ROLES_KILLS=20 SCHEMATHESIS_MAX_EXAMPLES=100 \
		$(BIN)/python -m pytest tests/test_model_stateful.py tests/test_model_stream.py tests/test_tamper.py \
		tests/test_crash.py tests/test_serve_crash.py tests/test_redis_serve_crash.py tests/test_redis_roles.py \
		tests/test_schemathesis.py
	$(BIN)/python -m pytest -m slow

bench-quick: $(STAMP) browser redis
	$(BIN)/python -m benchmarks.core --quick
	$(BIN)/python -m benchmarks.journal --quick
	$(BIN)/python -m benchmarks.ws_load --quick
	$(BIN)/python -m benchmarks.web_room --quick
	$(BIN)/python -m benchmarks.redis_append --quick
	$(BIN)/python -m benchmarks.redis_serve --quick
	$(BIN)/python -m benchmarks.scale --quick
	$(BIN)/python -m benchmarks.failover --quick
	$(BIN)/python -m benchmarks.tenders --quick
	$(BIN)/python -m benchmarks.grouped --quick

bench: $(STAMP) browser redis
	$(BIN)/python -m benchmarks.core
	$(BIN)/python -m benchmarks.journal
	$(BIN)/python -m benchmarks.ws_load
	$(BIN)/python -m benchmarks.tenders
	$(BIN)/python -m benchmarks.grouped
	$(BIN)/python -m benchmarks.web_room
	$(BIN)/python -m benchmarks.redis_append
	$(BIN)/python -m benchmarks.redis_serve
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.failover

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
