# Every target installs what it needs first; `make install` is idempotent
# (the venv is rebuilt only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE_HIT := v=2&tid=G-DEMO12345&cid=555.1700000000&_p=1&_s=1&en=purchase&cu=EUR&ep.transaction_id=T-1001&epn.value=59.90&pr1=idSKU-1~nmT-Shirt~pr19.95~qt2&pr2=idSKU-2~nmCap~pr20~qt1&dl=https%3A%2F%2Fshop.example.com%2Fthanks%3Fttclid%3DE.C.P.demo&ep.user_data.email_address=Alice%40Example.com

.PHONY: install run test check bench format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: install
	@echo "No server yet: showing what 'tiktok-gateway inspect' makes of a sample GA4 purchase hit." >&2
	$(BIN)/tiktok-gateway inspect '$(SAMPLE_HIT)' --user-agent 'Mozilla/5.0 (demo)' --ip 203.0.113.7

test: install
	$(BIN)/python -m pytest

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/mapping.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
