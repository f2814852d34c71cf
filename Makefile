# Two commands for a newcomer: `make run` and `make test`. Everything else is a helper;
# `make help` lists them all (the `## ` text after a target is its line there).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: help run test install catalogs extract migrate schema lint bench screenshots clean

help: ## List the targets (`make run` and `make test` are all a newcomer needs)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' \
	  $(MAKEFILE_LIST)

run: catalogs ## Start the bot (settings from .env / the environment)
	$(PY) -m bot

test: catalogs ## Run the whole test suite (PostgreSQL and Redis must be running)
	$(BIN)/pytest

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

catalogs: install ## Compile the translation catalogs (locales/*/messages.mo)
	$(BIN)/pybabel compile --statistics -d locales -D messages

migrate: install ## Apply the database migrations
	$(PY) -m bot migrate

lint: install ## ruff check, ruff format --check and mypy (what pre-commit runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Extract every translatable string and merge it into the en/ru catalogs; English is filled
# from the source, then list what ru still needs: `$(PY) tools/catalog.py missing ru`.
extract: install ## Extract the strings into the en/ru catalogs and fill en
	flock locales/.lock sh -c '$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output \
	  -k __ -k N_ -o locales/messages.pot . && \
	  $(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete && \
	  CATALOG_LOCKED=1 $(PY) tools/catalog.py fill-en'

# Regenerate the initial migration from the models (allowed until the first release).
schema: install ## Regenerate the initial migration from the models
	flock migrations/.lock sh -c 'rm -f migrations/versions/0001_initial.py data/schema.tmp.sqlite3 && \
	  ALEMBIC_DATABASE_URL=sqlite+aiosqlite:///data/schema.tmp.sqlite3 $(BIN)/alembic revision \
	  --autogenerate --rev-id 0001 -m initial; \
	  rm -f data/schema.tmp.sqlite3'

bench: install ## Run the benchmarks
	$(PY) -m bench

screenshots: catalogs ## Redo docs/screenshots (the web pages in en/ru; needs Debian's chromium)
	$(PY) tools/screenshots.py

clean: ## Remove .venv and the tool caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
