# Two commands for a newcomer: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: run test install catalogs extract update-catalogs migrate schema lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

catalogs: install
	$(BIN)/pybabel compile --statistics -d locales -D messages

migrate: install
	$(PY) -m bot migrate

run: catalogs
	$(PY) -m bot

test: catalogs
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Extract every translatable string and merge it into the en/ru catalogs; English is filled
# from the source, then list what ru still needs: `$(PY) tools/catalog.py missing ru`.
extract: install
	flock locales/.lock sh -c '$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output \
	  -k __ -k N_ -o locales/messages.pot . && \
	  $(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete && \
	  CATALOG_LOCKED=1 $(PY) tools/catalog.py fill-en'

# Regenerate the initial migration from the models (allowed until the first release).
schema: install
	flock migrations/.lock sh -c 'rm -f migrations/versions/0001_initial.py data/schema.tmp.sqlite3 && \
	  ALEMBIC_DATABASE_URL=sqlite+aiosqlite:///data/schema.tmp.sqlite3 $(BIN)/alembic revision \
	  --autogenerate --rev-id 0001 -m initial; \
	  rm -f data/schema.tmp.sqlite3'

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
