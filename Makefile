# sopilot — developer targets. `make help` lists them.
SHELL := bash
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

BUF_VERSION         := v1.75.0
STATICCHECK_VERSION := v0.8.2
GRPCURL_VERSION     := v1.9.4
TERRAFORM_VERSION   := v1.5.7

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/buf:
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/terraform:
	GOBIN=$(BIN) go install github.com/hashicorp/terraform@$(TERRAFORM_VERSION)

.PHONY: tools
tools: $(BIN)/buf $(BIN)/staticcheck $(BIN)/grpcurl $(BIN)/terraform ## install pinned tools into ./bin

.PHONY: generate
generate: $(BIN)/buf ## regenerate pkg/ from proto/ (buf, local plugins pinned in go.mod) and the reflection descriptor set
	buf generate
	buf build -o internal/server/reflection.binpb

.PHONY: check-generated
check-generated: generate ## fail if generated code differs from proto/
	@if [ -n "$$(git status --porcelain -- pkg internal/server/reflection.binpb)" ]; then \
	  echo "generated code is stale: run 'make generate' and commit pkg/ and internal/server/reflection.binpb:"; git status --short -- pkg internal/server/reflection.binpb; exit 1; fi

.PHONY: lint
lint: $(BIN)/buf $(BIN)/staticcheck ## gofmt, go vet, the house rules (hack/houserules), staticcheck, buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run ./hack/houserules
	staticcheck ./...
	buf lint

# What `--version` says (internal/version): the nearest tag (or the commit),
# the commit with -dirty for a tree with changes, the build time.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null && echo $$c || echo $$c-dirty; })
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/sopilot/sopilot/internal/version
LDFLAGS    := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT) -X $(VERSION_PKG).date=$(BUILD_DATE)

.PHONY: build
build: ## build the binaries into ./bin (--version: VERSION, COMMIT, BUILD_DATE from git unless given)
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: test
test: ## THE test command: installs what it needs, runs lint and every test on Slurm 22.05, then the Slurm-facing tests on 24.11 and 26.05 and the chart on a real Kubernetes
	hack/test.sh

.PHONY: test-matrix
test-matrix: ## only the newer-Slurm phases of `make test` (SLURM=24.11 for one version)
	hack/test.sh $(if $(SLURM),--slurm $(SLURM),--matrix)

.PHONY: test-k8s
test-k8s: ## only the Helm chart on a real single-node Kubernetes against Slurm 24.11 (hack/k8s; the first run builds Kubernetes)
	hack/test.sh --k8s

.PHONY: test-unit
test-unit: ## tests only, against a cluster you started (tests needing Slurm skip if it is absent)
	go test -race ./...

# SLURM=24.11 (or SOPILOT_SLURM_VERSION) picks the cluster's Slurm version.
SLURM ?=

.PHONY: cluster-up
cluster-up: ## start the local Slurm cluster, 22.05 or SLURM=24.11|26.05 (root; installs Debian packages, or builds a chroot)
	hack/slurm/cluster.sh $(if $(SLURM),--slurm $(SLURM)) up

.PHONY: cluster-down
cluster-down: ## stop the local Slurm cluster (SLURM= as for cluster-up)
	hack/slurm/cluster.sh $(if $(SLURM),--slurm $(SLURM)) down

.PHONY: bench
bench: ## benchmarks of docs/benchmarks.md (needs the local cluster)
	hack/bench.sh

.PHONY: demo
demo: ## THE main command: the seed's workflow (save, 2-node DDP training with live progress, inference x2, compare) on a local Slurm cluster with simulated-GPU agents
	hack/demo.sh

.PHONY: demo-resilience
demo-resilience: ## extra: a fine-tuning run survives an injected XID 79 (node drained, run resumed from its checkpoint on the other node, compared with an undisturbed run)
	hack/demo-resilience.sh

.PHONY: demo-down
demo-down: ## stop what `DEMO_KEEP=1 make demo` left running (controller, agents, the cluster if the demo started it)
	@if [ -f /tmp/sopilot-demo.state ]; then . /tmp/sopilot-demo.state; kill $$pids 2>/dev/null || true; \
	  if [ "$$started_cluster" = 1 ]; then SOPILOT_SLURM_VERSION=$${slurm_version:-22.05} hack/slurm/cluster.sh down; fi; rm -f /tmp/sopilot-demo.state; echo "demo stopped"; \
	else echo "no demo left running (DEMO_KEEP=1 make demo leaves one)"; fi

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
REGISTRY ?= ghcr.io/sopilot
# Slurm release of controller-slurmcli's tools (22.05, 24.11 or 26.05) and
# the Debian suite that packages it.
SLURM_CLIENT ?= 24.11
SLURM_SUITE = $(if $(filter 22.05,$(SLURM_CLIENT)),bookworm,$(if $(filter 26.05,$(SLURM_CLIENT)),sid,trixie))

.PHONY: images
images: ## build the container images, tagged with VERSION (git describe) under REGISTRY (needs docker with BuildKit)
	docker build -f deploy/docker/controller.Dockerfile --target controller \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(REGISTRY)/controller:$(VERSION) .
	docker build -f deploy/docker/controller.Dockerfile --target controller-slurmcli \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg SLURM_VERSION=$(SLURM_CLIENT) --build-arg SLURM_SUITE=$(SLURM_SUITE) \
	  -t $(REGISTRY)/controller-slurmcli:$(VERSION)-slurm$(SLURM_CLIENT) .
	docker build -f deploy/docker/node-agent.Dockerfile \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(REGISTRY)/node-agent:$(VERSION) .
