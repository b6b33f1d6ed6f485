# Every target installs what it needs first; `make install` is idempotent
# (the venv is rebuilt only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.compiled
SOURCES := $(shell find src -name '*.py')

.PHONY: install run test check bench format clean pure

install: $(NATIVE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The per-event hot path compiled with mypyc, in place next to its sources (setup.py lists the
# modules); rebuilt whenever a source changes, since compiled modules shadow their .py files.
# Without a working C compiler the gateway runs as plain Python (same behaviour, slower), and says so.
$(NATIVE): $(STAMP) setup.py $(SOURCES)
	if TIKTOK_GATEWAY_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace; then \
	  find src -name '*.so' -exec touch {} +; \
	else \
	  find src -name '*.so' -delete; \
	  echo "WARNING: compiling the hot path failed (is a C compiler installed?);" \
	    "running as plain Python, about half as fast" >&2; \
	fi
	touch $(NATIVE)

# Back to pure Python (the next install compiles again): for a quick edit-test loop.
pure:
	find src -name '*.so' -delete
	rm -f $(NATIVE)

# The gateway on 127.0.0.1:8080 (hits) and 127.0.0.1:8081 (admin: /debug, /metrics, /sandbox) with
# its SQLite queue in ./data; it prints a curl command to try. Offline: TikTok events (no token) and
# GA4 forwards (GATEWAY_GA4_ENDPOINT=sandbox unless set) go to the built-in sandbox, listed at
# /sandbox/events and /sandbox/ga4/hits on the admin listener.
run: install
	GATEWAY_GA4_ENDPOINT=$${GATEWAY_GA4_ENDPOINT:-sandbox} $(BIN)/tiktok-gateway serve --host 127.0.0.1 --port 8080 --data-dir ./data

# The Redis queue's tests need a Redis server on loopback: started (installed) when none answers.
test: install
	.ci/ensure-redis
	$(BIN)/python -m pytest

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks print numbers (docs/performance.md explains them); they are not tests.
# bench/ingest.py drives the closed loop with wrk, a Debian package.
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/mapping.py
	$(BIN)/python bench/email_redaction.py
	$(BIN)/python bench/queue_commit.py
	$(BIN)/python bench/ingest.py --stages
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/forward_client.py

clean: pure
	rm -rf build $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
