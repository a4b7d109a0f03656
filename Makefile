# moxd build. "make run" builds and starts a localserve instance in ./local;
# "make test" runs every test (as root it also runs the privilege-separation
# integration tests).

GO ?= go
GOFLAGS_P ?= -p 2
BINDIR ?= bin
# One build id for all binaries of a build: moxd-master refuses workers of
# another build (binaries replaced under a running master).
BUILDID := $(shell date -u +%Y%m%dT%H%M%SZ)-$(shell (git rev-parse --short=12 HEAD 2>/dev/null || echo nogit))-$(shell od -An -N4 -tx4 /dev/urandom | tr -d ' ')
VERSION ?= dev
LDFLAGS := -X moxd/internal/version.buildID=$(BUILDID) -X moxd/internal/version.Version=$(VERSION)
BINARIES := moxd-master moxd-keys moxd-store moxd-queue moxd-smtp moxd-imap moxd-web moxctl

.PHONY: all build run test test-race bench fuzz vet clean

all: build

build:
	@mkdir -p $(BINDIR)
	$(GO) build $(GOFLAGS_P) -trimpath -ldflags "$(LDFLAGS)" -o $(BINDIR)/ $(addprefix ./cmd/,$(BINARIES))

run: build
	$(BINDIR)/moxd-master localserve -dir local

test: build vet
	$(GO) test $(GOFLAGS_P) -count=1 ./...

# The integration tests with race-detector builds of every binary.
test-race: build
	MOXD_RACE=1 $(GO) test $(GOFLAGS_P) -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }
	$(GO) vet $(GOFLAGS_P) ./...
	GOOS=openbsd $(GO) vet $(GOFLAGS_P) ./...
	GOOS=freebsd $(GO) vet $(GOFLAGS_P) ./...

bench: build
	bench/run

# Each fuzz target for FUZZTIME (seeds already run in make test).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BINDIR)
