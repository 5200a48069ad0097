# imagebuilder — see README.md. Two entry points: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/imagebuilder
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/imagebuilder
BUILD := build
BASE := $(BUILD)/base-debian12.tar
# Debian packages the demo and the tests need (installed only when missing).
APT_PACKAGES := qemu-system-x86 qemu-utils ovmf mmdebstrap systemd-boot-efi e2fsprogs \
	dosfstools mtools gdisk bubblewrap zstd iproute2 curl docker-registry git gcc libc6-dev xfsprogs grub-pc-bin grub-efi-amd64-bin xorriso fdisk time openssh-client lvm2
TEST_TIMEOUT ?= 40m
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(CACHE_DIR)/tools/staticcheck-$(STATICCHECK_VERSION)

.PHONY: all deps build demo test unit boot-test vet lint bench bench-installsh bench-pkgbuild clean bench-outputs packer-tools packer-plugin packer-test bench-deps bench-boot

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: run as root or install: apt-get install $$missing" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build:
	$(GO) build -trimpath -o $(BIN) ./imagebuilder/cmd/imagebuilder
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-buildid= -o $(dir $(BIN))imagebuilder-installer ./imagebuilder/installer/cmd/installer
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-buildid= -o $(dir $(BIN))imagebuilder-appliance ./imagebuilder/inplace/appliance

$(BASE): distros/debian/mkbase.sh | deps
	@mkdir -p $(BUILD)
	distros/debian/mkbase.sh $(BASE)

base: $(BASE)

demo: deps build
	BIN=$(BIN) BASE=$(BASE) BUILD=$(BUILD) CACHE_DIR=$(CACHE_DIR) examples/demo.sh

vet: $(STATICCHECK)
	$(GO) vet ./...
	cd packer-plugin && $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi
	$(STATICCHECK) ./...
	cd packer-plugin && $(STATICCHECK) ./...

# staticcheck, built once from the module proxy (exact version: the proxy
# refuses version lists) in a throwaway module, cached outside the clone.
$(STATICCHECK):
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
	$(GO) mod init tmp >/dev/null 2>&1; \
	$(GO) get honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	mkdir -p $(dir $(STATICCHECK)); \
	$(GO) build -o $(STATICCHECK).tmp honnef.co/go/tools/cmd/staticcheck; mv $(STATICCHECK).tmp $(STATICCHECK)

unit:
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v /qemu-tests)

boot-test: deps $(BASE)
	IMAGEBUILDER_BASE_TAR=$(abspath $(BASE)) IMAGEBUILDER_CACHE=$(CACHE_DIR) \
	  $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./qemu-tests/... 2>&1 | tee $(BUILD)/boot-test.log; exit $${PIPESTATUS[0]}

# GOTESTFLAGS=-v shows every test with its seconds.
test: deps $(BASE) vet packer-tools
	IMAGEBUILDER_BASE_TAR=$(abspath $(BASE)) IMAGEBUILDER_CACHE=$(CACHE_DIR) \
	  $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...
	$(MAKE) packer-test

# The Packer plugin is its own Go module (packer-plugin/go.mod: the SDK's
# dependencies and its go-cty replace stay out of the main module).
# packer-tools builds Packer, packer-plugin-qemu and packer-sdc once into
# $(CACHE_DIR)/tools (about 2 minutes on an empty cache).
packer-tools:
	packer-plugin/tools/get-packer.sh all >/dev/null
	packer-plugin/tools/get-packer.sh sdc >/dev/null

packer-plugin:
	cd packer-plugin && $(GO) build -trimpath -o ../bin/packer-plugin-imagebuilder .

packer-test: packer-tools
	cd packer-plugin && $(GO) test -count=1 -timeout 10m ./...

# Fault injection for install.sh: SIGKILL at random points over 200 trials
# (fresh install, upgrade, rollback); `make test` runs 30 of them.
bench-installsh:
	$(GO) test -count=1 -timeout 30m -run TestInstallKilledAtRandom -v ./genconf/installsh/ -args -installsh.trials=200

# pkgbuild figures: cold build, no-op rebuild, bundle assembly MB/s next to
# tar | zstd -T0 of the same tree (the lead wires this into bench).
bench-pkgbuild: deps
	$(GO) run ./pkgbuild/bench -repo . -cache $(CACHE_DIR)/store/cache

# Seconds and peak RSS from base + bundle to each output format, next to
# tar -x + mkfs.ext4 -d + qemu-img convert (imagebuilder/bench/bench-outputs.sh).
bench-outputs: deps build $(BASE)
	BIN=$(BIN) BASE=$(BASE) BUILD=$(BUILD) CACHE_DIR=$(CACHE_DIR) imagebuilder/bench/bench-outputs.sh

# Benchmarks (issue 9, bench/README.md): the same image four ways, a table,
# JSON under bench/results/. Packages only the benchmark needs (libguestfs and
# the kernel its appliance boots) are installed by `make bench`, not by
# `make test`. Other areas' benchmark targets join BENCH_TARGETS and run
# first. BENCH_FLAGS passes flags (e.g. BENCH_FLAGS='-n 1 -boot=false').
BENCH_APT_PACKAGES := libguestfs-tools linux-image-cloud-amd64 openssh-client
BENCH_TARGETS := bench-pkgbuild bench-outputs bench-installsh bench-boot
BENCH_FLAGS ?=

bench-deps: deps
	@missing=$$(for p in $(BENCH_APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "bench-deps: installing $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "bench-deps: run as root or install: apt-get install $$missing" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

bench: bench-deps build $(BASE) $(BENCH_TARGETS)
	$(GO) build -o bin/bench ./bench
	IMAGEBUILDER_CACHE=$(CACHE_DIR) bin/bench -base $(BASE) -bin $(BIN) $(BENCH_FLAGS)

# Boot-to-joined seconds per role next to the same image with cluster.target
# masked (multi-user.target), BENCH_RUNS runs (default 3), median/min/max;
# reports whether firstboot adds under 2 s (qemu-tests/bench_test.go).
BENCH_RUNS ?= 3
bench-boot: deps $(BASE)
	IMAGEBUILDER_BASE_TAR=$(abspath $(BASE)) IMAGEBUILDER_CACHE=$(CACHE_DIR) IMAGEBUILDER_BENCH_RUNS=$(BENCH_RUNS) \
	  $(GO) test -count=1 -timeout 60m -run '^$$' -bench BenchmarkBootToJoined -benchtime 1x -v ./qemu-tests/

clean:
	rm -rf bin $(BUILD)
