# strato: `make run` installs everything and runs the main job; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench

setup: $(STAMP)
	@bash scripts/start-services.sh

$(STAMP): pyproject.toml requirements.lock scripts/setup-system.sh
	bash scripts/setup-system.sh
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

run: setup
	bash scripts/run.sh

test: setup
	$(PY) -m pytest -q
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check strato tests bench
	$(VENV)/bin/mypy

lint: setup
	$(VENV)/bin/ruff check strato tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/create_servers.py --hosts 10 --servers 200 --mode embedded
	$(PY) bench/create_servers.py --hosts 10 --servers 200 --mode distributed
