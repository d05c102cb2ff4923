# The README's commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml layers/keysentry/requirements.txt | cksum | cut -d' ' -f1)

.PHONY: install test lint typecheck unit validate demo bench openapi clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests bench
	$(BIN)/ruff format --check layers functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy layers/keysentry/keysentry functions

validate: $(STAMP)
	$(BIN)/cfn-lint template.yaml

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck validate unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

openapi: $(STAMP)
	$(BIN)/python -c "from keysentry.api.app import app; print(app.get_openapi_json_schema(title='keysentry management API', version='1'))" > docs/openapi.json

demo: $(STAMP)
	$(BIN)/keysentry demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
