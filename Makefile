# One entry point for people and CI. A clean clone has no .venv: every target
# that needs one creates it and installs the project first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# `make run` is the demo: config/example.yaml on its own database, started afresh each
# time so its reminders show every time, never the database `watcher init` users get.
DEMO_DB := config/demo.db
RUN_ARGS ?=

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SIM Watcher needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	WATCHER_DATABASE_URL=sqlite:///$(abspath $(DEMO_DB)) $(BIN)/watcher run -c config/example.yaml $(RUN_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check watcher scrapers tests benchmarks
	$(BIN)/ruff format --check watcher scrapers tests benchmarks
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
