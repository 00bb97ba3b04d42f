# `make run` starts everything; `make test` runs the whole suite. Both set up .venv first, from
# requirements.lock (every package pinned with its hashes); `make lock` refreshes the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock

.PHONY: run test migrate lint lock

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Pins the runtime and the dev extra for Python 3.11 on Linux, with every file's hash: uv
# resolves, pip installs. Pins still allowed by pyproject.toml are kept; to move every
# package to its newest allowed release: make lock LOCK_ARGS=--upgrade
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.9'
	$(BIN)/uv pip compile --quiet --generate-hashes --extra dev --python-version 3.11 \
		--python-platform linux $(LOCK_ARGS) pyproject.toml -o $(LOCK)

migrate: $(STAMP)
	$(BIN)/flask --app webapp db upgrade

run: migrate
	$(BIN)/python -m webapp.launcher

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check webapp tests worker.py scheduler.py
