# Dispatcher: the Makefile is the interface. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The Go toolchain go.mod names: a machine starts on its own Go (GOTOOLCHAIN=local), so
# say which; the go command fetches it from the module proxy once (about 76 MB).
export GOTOOLCHAIN := go1.27.3

FUNCTIONS   := command stream-relay dlq-replay command-consumer stream-recovery
GO          ?= go
VENV        := .venv
PY          ?= python3
DIST        := dist
GO_BUILD_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w" -buildvcs=false
# `go test` timeout for the whole suite; keep `make test` well under ten minutes.
TEST_TIMEOUT ?= 8m
export SAM_CLI_TELEMETRY := 0

# Stamps: reinstall only when the lockfiles change.
NPM_STAMP := localstack/node_modules/.installed
PY_STAMP  := $(VENV)/.installed

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_%-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## --- setup -------------------------------------------------------------------
$(NPM_STAMP): localstack/package.json localstack/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is required (the SQS and SES emulators run on it)"; exit 1; }
	cd localstack && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(PY_STAMP): tools/requirements.txt
	@command -v $(PY) >/dev/null || { echo "Python 3.11+ is required for cfn-lint and the SAM CLI"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

MOTO_VENV  := .venv-moto
MOTO_STAMP := $(MOTO_VENV)/.installed
$(MOTO_STAMP): tools/moto/requirements.txt
	@command -v $(PY) >/dev/null || { echo "Python 3.11+ is required for moto"; exit 1; }
	$(PY) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/moto/requirements.txt
	@touch $@

.PHONY: emulators-install py-tools deps moto-install
moto-install: $(MOTO_STAMP) ## install moto[server] into .venv-moto from tools/moto/requirements.txt (for make test-moto)
emulators-install: $(NPM_STAMP) ## install the pinned local emulators (npm ci in localstack/)
py-tools: $(PY_STAMP) ## install cfn-lint and the SAM CLI into .venv from tools/requirements.txt
deps: emulators-install py-tools moto-install ## install everything: Go modules, emulators, Python tools, moto
	$(GO) mod download

## --- test --------------------------------------------------------------------
.PHONY: test test-go test-short lint-template lint-openapi sam-build
test: emulators-install py-tools lint-template lint-openapi sam-build test-go ## everything CI runs: template checks, sam build, unit and integration tests against the emulators

test-go:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# The store, adapter, delivery, replay, sweeper, runner, command-API, command-function, rate-limit, caller-registry and examples/orders integration tests again, against moto
# (a second AWS implementation) instead of the emulators: same tests, same
# AWS_ENDPOINT_URL* switch. Known moto differences skip one assertion each, by
# name (docs/local.md, "moto").
MOTO_PACKAGES := ./internal/dynamo ./internal/sqs ./internal/ses ./internal/relay ./internal/replay ./internal/local/runner ./internal/apigw ./internal/app/commandfn ./internal/ratelimit ./internal/caller ./examples/orders
.PHONY: test-moto
test-moto: moto-install py-tools ## the store, adapter, relay, replay, sweeper, runner, command-API, command-function, rate-limit, caller-registry and examples/orders integration tests against moto instead of the emulators
	DISPATCHER_BACKEND=moto $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(MOTO_PACKAGES)

test-short: ## unit tests only (no emulators)
	$(GO) test -short -count=1 ./...

TRANSFORMED := .aws-sam/transformed
# lint-template's checks, each a file that says it passed on the inputs it names, so that a
# second run (make audit after make test) reuses what passed, and a changed input (the
# template, tools/transform.py, the pinned tools, this Makefile) runs that check again.
# They run NPROC at a time, each one's output kept together. py-tools installs the tools
# first; the checks name the lockfile, so that `make -o .venv/.installed` holds for them too.
LINT_OK        := .aws-sam/lint-template
TRANSFORMED_OK := $(TRANSFORMED)/.transformed-and-linted
LINT_INPUTS    := infra/template.yaml tools/requirements.txt Makefile
LINT_CHECKS    := $(LINT_OK)/cfn-lint.ok $(LINT_OK)/sam-validate.ok $(LINT_OK)/sam-validate-lint.ok $(TRANSFORMED_OK)
NPROC          := $(shell nproc 2>/dev/null || echo 2)
lint-template: py-tools ## cfn-lint, `sam validate` (the SAM transform) and `sam validate --lint`; the transform under all 32 shape-changing parameter sets (tools/transform.py), and cfn-lint on its CloudFormation; each check runs again only when its inputs changed
	@$(MAKE) --no-print-directory -j$(NPROC) --output-sync=target lint-template-checks

.PHONY: lint-template-checks
lint-template-checks: $(LINT_CHECKS)
	@:

$(LINT_OK)/cfn-lint.ok: $(LINT_INPUTS)
	$(VENV)/bin/cfn-lint infra/template.yaml
	@mkdir -p $(@D) && touch $@

$(LINT_OK)/sam-validate.ok: $(LINT_INPUTS)
	$(VENV)/bin/sam validate --template-file infra/template.yaml --region us-east-1
	@mkdir -p $(@D) && touch $@

$(LINT_OK)/sam-validate-lint.ok: $(LINT_INPUTS)
	$(VENV)/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1
	@mkdir -p $(@D) && touch $@

# cfn-lint reads the transformed sets in NPROC parts at once.
$(TRANSFORMED_OK): $(LINT_INPUTS) tools/transform.py
	@rm -rf $(TRANSFORMED)
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/python tools/transform.py infra/template.yaml $(TRANSFORMED) 2> >(grep -v 'unpublished metrics' >&2)
	@files=($(TRANSFORMED)/*.json); per=$$(( ($${#files[@]} + $(NPROC) - 1) / $(NPROC) )); \
	  echo "$(VENV)/bin/cfn-lint $(TRANSFORMED)/*.json ($${#files[@]} files, $$per per cfn-lint, $(NPROC) at once)"; \
	  printf '%s\0' "$${files[@]}" | xargs -0 -P $(NPROC) -n $$per $(VENV)/bin/cfn-lint
	@touch $@

lint-openapi: py-tools ## openapi-spec-validator on api/openapi.yaml (OpenAPI 3.1); TestOpenAPI (internal/apigw) holds the handler to it
	$(VENV)/bin/openapi-spec-validator api/openapi.yaml

# The email template folder deployed as the template layer (EmailTemplatesLayer) and used by
# `make dev`: yours, or the built-in one (docs/templates.md).
EMAIL_TEMPLATES ?= internal/emails/templates
TEMPLATES_LAYER := .aws-sam/email-templates-layer

.PHONY: templates-check templates-preview templates-layer
templates-check: ## check the email template folder EMAIL_TEMPLATES (default: the built-in one): every template renders with its sample.json, dispatcher.yaml's senders and grants hold; each problem with its file and line
	$(GO) run ./cmd/dispatcher-templates check $(EMAIL_TEMPLATES)

templates-preview: ## render template NAME of EMAIL_TEMPLATES with its sample.json into .local/preview/NAME/ (subject.txt, body.txt, body.html)
	@test -n "$(NAME)" || { echo "usage: make templates-preview NAME=<template> [EMAIL_TEMPLATES=dir]"; exit 1; }
	$(GO) run ./cmd/dispatcher-templates preview -dir $(EMAIL_TEMPLATES) -out .local/preview/$(NAME) $(NAME)

templates-layer: templates-check ## stage EMAIL_TEMPLATES, checked, as the template layer's content (.aws-sam/email-templates-layer/dispatcher-templates)
	@rm -rf $(TEMPLATES_LAYER)
	@mkdir -p $(TEMPLATES_LAYER)
	cp -R $(EMAIL_TEMPLATES)/. $(TEMPLATES_LAYER)/dispatcher-templates

sam-build: py-tools templates-layer ## `sam build` of the five functions through this Makefile (linux/arm64), and the template layer from EMAIL_TEMPLATES, into .aws-sam/
	$(VENV)/bin/sam build --build-in-source --template-file infra/template.yaml --build-dir .aws-sam/build --region us-east-1 >/dev/null
	@ls -l .aws-sam/build/*/bootstrap | awk '{print "  " $$5 "\t" $$9}'

## --- bench -------------------------------------------------------------------
.PHONY: bench
BENCH_OUT := .local/bench.txt
bench: emulators-install ## benchmarks against the emulators; each speed is a ratio to a baseline from the same run
	$(GO) run ./cmd/benchreport -o $(dir $(BENCH_OUT))

## --- fuzz --------------------------------------------------------------------
.PHONY: fuzz
FUZZTIME ?= 30s
fuzz: ## run each fuzz target for FUZZTIME (their seed corpora also run in `make test`)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/dispatch
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzStreamRecord$$' -fuzztime $(FUZZTIME) ./internal/dynamo
	$(GO) test -run '^$$' -fuzz '^FuzzDLQMessage$$' -fuzztime $(FUZZTIME) ./internal/replay

## --- lint --------------------------------------------------------------------
.PHONY: lint
lint: ## gofmt, go vet, staticcheck; the domain imports only the standard library and the public outbox contract; product packages import neither the local stack nor the test kit; the use cases import no adapter
	@out="$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...))"; \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool -modfile=tools/go.mod staticcheck ./...
	@contract="$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./outbox)"; \
	  bad="$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./internal/dispatch | grep -v '^github.com/dispatcher-dev/dispatcher/internal/dispatch$$' | grep -vxF "$$contract" || true)"; \
	  if [ -n "$$bad" ]; then echo "internal/dispatch (the domain) must import only the standard library and the public outbox contract, but imports:"; echo "$$bad"; exit 1; fi
	@bad="$$(for p in $$($(GO) list ./internal/... ./functions/... | grep -v -e '/internal/local/' -e '/internal/testkit/'); do \
	    $(GO) list -f '{{range .Deps}}{{$$.ImportPath}} imports {{.}}{{"\n"}}{{end}}' $$p | grep -E 'internal/(local|testkit)/'; done || true)"; \
	  if [ -n "$$bad" ]; then echo "product packages must not import the local stack (internal/local) or the test kit (internal/testkit):"; echo "$$bad"; exit 1; fi
	@bad="$$(for p in ./internal/command ./internal/delivery ./internal/replay; do \
	    $(GO) list -f '{{range .Deps}}{{$$.ImportPath}} imports {{.}}{{"\n"}}{{end}}' $$p | grep -E 'dispatcher/internal/(dynamo|sqs|ses|streams|apigw|app)(/|$$)'; done || true)"; \
	  if [ -n "$$bad" ]; then echo "the use cases (command, delivery, replay) must not import an adapter or an edge:"; echo "$$bad"; exit 1; fi
	@echo "lint: ok"

## --- audit -------------------------------------------------------------------
# Outside checks of the code and the template (docs/security.md): govulncheck against
# a dated snapshot of the Go vulnerability database (the module golang.org/x/vulndb,
# served by the module proxy: CI reaches no other copy), checkov, and cfn-guard on the
# CloudFormation the SAM transform makes under every parameter set.
.PHONY: audit
AUDIT_VENV          := .venv-audit
AUDIT_STAMP         := $(AUDIT_VENV)/.installed
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION := v1.9.0
CFN_GUARD_VERSION   := 3.2.1
VULNDB              := .local/vulndb/$(VULNDB_VERSION)
CFN_GUARD           := .local/cargo/bin/cfn-guard

$(AUDIT_STAMP): tools/audit/requirements.txt
	$(PY) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/audit/requirements.txt
	@touch $@

$(VULNDB)/index/db.json:
	@rm -rf $(VULNDB)
	src="$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')"; \
	  $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$src/data/osv" -out $(VULNDB)

# Built without optimization (opt-level 0): it compiles in a fraction of the time, and
# checks the 32 templates in about 3 s instead of 1, with the same findings and exit status.
$(CFN_GUARD):
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required to build cfn-guard"; exit 1; }
	CARGO_PROFILE_RELEASE_OPT_LEVEL=0 cargo install cfn-guard --locked --version $(CFN_GUARD_VERSION) --root .local/cargo

audit: lint-template $(AUDIT_STAMP) $(VULNDB)/index/db.json $(CFN_GUARD) ## govulncheck (vulndb snapshot $(VULNDB_VERSION)), checkov and cfn-guard; findings left are listed in docs/security.md
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(CURDIR)/$(VULNDB) ./...
	$(AUDIT_VENV)/bin/checkov --config-file tools/audit/checkov.yaml -f infra/template.yaml
	$(AUDIT_VENV)/bin/checkov --config-file tools/audit/checkov.yaml -d $(TRANSFORMED)
	$(CFN_GUARD) validate --rules tools/audit/guard --data $(TRANSFORMED) --show-summary fail
	@echo "audit: ok"

## --- docs --------------------------------------------------------------------
.PHONY: imports
imports: ## redraw the import graph in docs/architecture.md (Mermaid, grouped by wing)
	@{ sed '/^```mermaid$$/,$$d' docs/architecture.md; $(GO) run ./cmd/importgraph; } > docs/architecture.md.new
	@mv docs/architecture.md.new docs/architecture.md
	@echo "docs/architecture.md: import graph redrawn"

## --- build -------------------------------------------------------------------
.PHONY: build
build: $(addprefix $(DIST)/,$(addsuffix .zip,$(FUNCTIONS))) ## linux/arm64 bootstrap per function, zipped, in dist/

$(DIST)/%.zip: FORCE
	@mkdir -p $(DIST)/$*
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(DIST)/$*/bootstrap ./functions/$*
	@rm -f $@
	cd $(DIST)/$* && $(PY) -m zipfile -c ../$*.zip bootstrap
	@ls -l $(DIST)/$*/bootstrap $@ | awk '{print "  " $$5 "\t" $$9}'

# SAM's `BuildMethod: makefile` calls build-<LogicalId> with ARTIFACTS_DIR set.
build-CommandFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/command
build-StreamRelayFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/stream-relay
build-DLQReplayFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/dlq-replay
build-CommandConsumerFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/command-consumer
build-StreamRecoveryFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/stream-recovery

## --- local AWS ---------------------------------------------------------------
.PHONY: emulators-up emulators-down provision localstack-up localstack-down
emulators-up: emulators-install ## start the emulators in the background on 127.0.0.1 (8000, 9324, 8005) and provision the template
	$(GO) run ./cmd/dispatcher-local emulators up -detach

emulators-down: ## stop what emulators-up started
	$(GO) run ./cmd/dispatcher-local emulators down

provision: ## create the template's tables, queues and SES resources wherever AWS_ENDPOINT_URL* points
	$(GO) run ./cmd/dispatcher-local provision

LOCALSTACK_BIN := .local/localstack/dispatcher-local
localstack-up: ## (needs Docker) run LocalStack; its init hook provisions infra/template.yaml
	@mkdir -p $(dir $(LOCALSTACK_BIN))
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -o $(LOCALSTACK_BIN) ./cmd/dispatcher-local
	docker compose -f localstack/docker-compose.yml up -d --wait
	@echo "LocalStack is up: export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"

localstack-down: ## (needs Docker) stop LocalStack
	docker compose -f localstack/docker-compose.yml down

## --- housekeeping ------------------------------------------------------------
.PHONY: clean FORCE
clean: ## remove build output, the venv, node_modules and local state
	rm -rf $(DIST) .aws-sam .local $(VENV) $(AUDIT_VENV) $(MOTO_VENV) localstack/node_modules

FORCE:

## --- run ---------------------------------------------------------------------
# dev builds the local tool into LOCAL_TOOL and runs it there, so that the
# commands its banner prints (LOCAL_TOOL replay ...) run as pasted in any shell,
# whatever that shell's go is.
LOCAL_TOOL := .local/bin/dispatcher-local
.PHONY: dev dev-binary local-tool
local-tool: ## build cmd/dispatcher-local into .local/bin/dispatcher-local
	@mkdir -p $(dir $(LOCAL_TOOL))
	$(GO) build -o $(LOCAL_TOOL) ./cmd/dispatcher-local

dev: emulators-install local-tool ## the whole flow locally: emulators, resources, API on 127.0.0.1:3000, stream trigger, replay, a preview of every template of EMAIL_TEMPLATES in the SES page (docs/local.md); Ctrl-C stops it and exits 0
	$(LOCAL_TOOL) dev -templates $(EMAIL_TEMPLATES)

dev-binary: emulators-install local-tool ## as dev, but the built bootstrap binaries run under the Lambda Runtime Interface Emulator
	$(LOCAL_TOOL) dev -binary -templates $(EMAIL_TEMPLATES)

## --- chaos -------------------------------------------------------------------
.PHONY: chaos
CHAOS_SEEDS ?= 11,22,33,44,55
CHAOS_N ?= 80
chaos: emulators-install ## the solutions (outbox, event-sourced, listen-to-yourself, own-table: a service writing its own table and outbox items in one transaction) against the dual-write anti-patterns under seeded faults (CHAOS_SEEDS, CHAOS_N); writes docs/chaos.png
	CHAOS_SEEDS=$(CHAOS_SEEDS) CHAOS_N=$(CHAOS_N) CHAOS_CHART=$(CURDIR)/docs/chaos.png $(GO) test -count=1 -v -timeout 40m -run '^TestChaos' ./internal/testkit/chaos

.PHONY: load
LOAD_DURATION ?= 20s
LOAD_CLIENTS ?= 8
load: emulators-install ## LOAD_CLIENTS signed clients against the local API for LOAD_DURATION; every event and email accounted for; requests/s, p50/p99, errors (must be 0)
	LOAD_DURATION=$(LOAD_DURATION) LOAD_CLIENTS=$(LOAD_CLIENTS) $(GO) test -count=1 -v -timeout 10m -run '^TestLoad' ./internal/testkit/load
