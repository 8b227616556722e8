PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
FAKETIME := /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1

.PHONY: run test lint format typecheck audit bench lighter-signer clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## make run: install, migrate, seed demo data and start web + worker + beat (Ctrl-C stops all)
run: $(STAMP)
	$(BIN)/python -m marqetfi.devserver

## make test: install and run the whole suite (embedded services, or DATABASE_URL / REDIS_URL);
## the browser tests drive Debian's Chromium and the clock-jump tests use Debian's libfaketime,
## both installed through apt where they are missing
test: $(STAMP) $(CHROMIUM) $(FAKETIME)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(CHROMIUM):
	tests/browser/install-chromium.sh

$(FAKETIME):
	tests/e2e/install-faketime.sh

## make lint: ruff, and the import contracts of pyproject.toml (which app may import which)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy .

## make audit: pip-audit over the pinned requirements; red on a known vulnerability, a loud
## NOT AUDITED banner (still green) when no advisory service answers, red then with AUDIT_REQUIRED=1
audit: $(STAMP)
	$(BIN)/python .ci/audit.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make lighter-signer: add Lighter's native order signer (lighter-sdk pins urllib3<2.1, so
## it goes in without its dependencies; only its signer library is loaded)
lighter-signer: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps lighter-sdk==1.1.8

clean:
	rm -rf $(VENV) var/*.sqlite3* .pytest_cache .mypy_cache .ruff_cache
