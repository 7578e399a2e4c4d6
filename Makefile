# yunxiao_exporter — build, test and generate.
#
#   make build      static binary ./yunxiao_exporter (same flags as the Dockerfile)
#   make test       go test -race ./...
#   make generate   render the alert rules (Prometheus, kustomize, Helm) from deploy/mixin
#   make docker     build the container image

GO           ?= go
BINARY       ?= yunxiao_exporter
DOCKER       ?= docker
DOCKER_IMAGE ?= yunxiao-exporter

# Version metadata injected into github.com/prometheus/common/version,
# printed by --version and exported as yunxiao_exporter_build_info.
ifndef VERSION
VERSION := $(or $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//'),dev)
endif
ifndef REVISION
REVISION := $(or $(shell git rev-parse --verify -q HEAD 2>/dev/null),unknown)
endif
ifndef BRANCH
BRANCH := $(or $(shell git symbolic-ref --short -q HEAD 2>/dev/null),unknown)
endif
ifndef BUILD_USER
BUILD_USER := $(or $(USER),$(shell id -un 2>/dev/null),unknown)@$(or $(shell hostname 2>/dev/null),unknown)
endif
ifndef BUILD_DATE
BUILD_DATE := $(shell date -u +%Y%m%d-%H:%M:%S)
endif
DOCKER_TAG   ?= $(VERSION)

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X '$(VERSION_PKG).Version=$(VERSION)' \
	-X '$(VERSION_PKG).Revision=$(REVISION)' \
	-X '$(VERSION_PKG).Branch=$(BRANCH)' \
	-X '$(VERSION_PKG).BuildUser=$(BUILD_USER)' \
	-X '$(VERSION_PKG).BuildDate=$(BUILD_DATE)'

.PHONY: all build test generate docker

all: generate build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)" -o $(BINARY) .

test:
	$(GO) test -race ./...

# deploy/prometheus/alerts.yml, deploy/kubernetes/base/prometheusrule.yaml,
# the Helm chart's templates/prometheusrule.yaml and the prometheusRule.alerts
# block of its values.yaml, all from deploy/mixin's Default(); a test in
# deploy/mixin fails when they drift (`go run ./deploy/mixin/gen -check`).
generate:
	$(GO) run ./deploy/mixin/gen
	$(GO) run ./deploy/prometheus/record

docker:
	$(DOCKER) build -t $(DOCKER_IMAGE):$(DOCKER_TAG) \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) \
		--build-arg BRANCH=$(BRANCH) \
		--build-arg BUILD_USER=$(BUILD_USER) \
		--build-arg BUILD_DATE=$(BUILD_DATE) \
		.
