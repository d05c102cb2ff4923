# The README's commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml layers/keysentry/requirements.txt | cksum | cut -d' ' -f1)

SAM_VENV ?= .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed

.PHONY: install test lint typecheck unit validate sam-validate scanners scanners-baseline publishable demo bench openapi e2e clean

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check layers dev functions tests bench examples
	$(BIN)/ruff format --check layers dev functions tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy layers/keysentry/keysentry dev/keysentry_dev functions examples/backend

validate: $(STAMP)
	$(BIN)/cfn-lint template.yaml

# The SAM CLI pins its own boto3 and cfn-lint: it lives in a virtualenv of its own.
$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check aws-sam-cli
	@touch $(SAM_STAMP)

# checkov pins its own dependencies (boto3, networkx, ...): a virtualenv of its own, at a pinned version.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $(CHECKOV_STAMP)

SCANNERS := $(BIN)/python -m keysentry_dev.scanners --checkov $(CHECKOV_VENV)/bin/checkov --cfn-lint $(BIN)/cfn-lint

# checkov and cfn-lint (informational rules too) on template.yaml and examples/*/template.yaml,
# against .scanners-baseline.yaml: a new finding, a stale entry or an entry without a reason fails
scanners: $(STAMP) $(CHECKOV_STAMP)
	$(SCANNERS)

# rewrites .scanners-baseline.yaml: reasons kept, stale entries dropped, new findings added without a reason
scanners-baseline: $(STAMP) $(CHECKOV_STAMP)
	$(SCANNERS) --update

# keysentry's template and each example that protects an API with it (examples/*/template.yaml)
sam-validate: $(SAM_STAMP) publishable
	for template in template.yaml template-sar.yaml examples/*/template.yaml; do \
		SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam validate --lint --template $$template || exit 1; \
	done

# template-sar.yaml: the copy the Serverless Application Repository takes (docs/deploy.md)
publishable: $(STAMP)
	$(BIN)/python -m keysentry_dev.publishable template.yaml template-sar.yaml

# sam build (python3.13), keysentry local up, sam local invoke of every function, and a scenario
# over HTTP under sam local start-api. SAM_INVOKE_IMAGE: a local Lambda image, where public ones can't be pulled.
e2e: $(STAMP) $(SAM_STAMP)
	SAM=$(SAM_VENV)/bin/sam $(BIN)/python -m tests.e2e.run

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck validate sam-validate scanners unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

openapi: $(STAMP)
	$(BIN)/python -c "from keysentry.api.app import app; print(app.get_openapi_json_schema(title='keysentry management API', version='1'))" > docs/openapi.json

demo: $(STAMP)
	$(BIN)/keysentry demo

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
