# The two commands a new user runs: `make demo` and `make test`.
GO ?= go
BIN := bin

.PHONY: all build test test-short vet fmt demo bench fuzz deps clean

all: build

# What --version and proxymatic_build_info report (GOFLAGS=-buildvcs=false
# or a copy without .git leaves Go nothing to stamp the commit from).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/meltwater/proxymatic/pkg/version.version=$(VERSION) \
	-X github.com/meltwater/proxymatic/pkg/version.commit=$(COMMIT)

# Built the way the images build them (Dockerfile.*): static, no cgo, so
# the binaries start without the dynamic loader and run on any glibc.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/ ./cmd/...

deps:
	@./scripts/install-deps.sh

# The test command: installs the proxies and etcd when missing, then runs
# every test against the real binaries. CI runs exactly this (.ci/run).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg internal)" || { gofmt -l cmd pkg internal; exit 1; }

demo: deps build
	@./scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN)
