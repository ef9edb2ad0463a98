# ingot's build: static binaries, no cgo.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     ?= bin
OUT     ?= out
VERSION ?= 1.0.0
export CGO_ENABLED = 0
# Tests run `go build` themselves: the same go must be first on PATH.
export PATH := $(dir $(GO)):$(PATH)
BUILDFLAGS = -trimpath -ldflags='-s -w -buildid='

.PHONY: all build check check-distro test vet demo demo-source bench fuzz clean

all: build

build:
	$(GO) build $(BUILDFLAGS) -o $(BIN)/ ./cmd/ingot ./cmd/ingot-init

vet:
	$(GO) vet ./...
	$(GO) vet -tags vm ./test/vm/
	$(GO) vet -tags vm,distro ./test/vm/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The test command: every package, the VM boots included, and the
# from-source distribution end to end (TestDistroBoot: the base is built
# into /var/cache/ingot-test/store, or INGOT_TEST_STORE, and reused; a cold
# store adds the whole base build, about 40 minutes on 2 cores); missing
# validators fail instead of skipping.
check: vet build
	INGOT_REQUIRE_TOOLS=1 $(GO) test -count=1 -tags vm,distro -timeout 85m ./...

# Only the from-source distribution end to end: build the base, image it,
# boot it.
check-distro: build
	$(GO) test -count=1 -tags vm,distro -run TestDistroBoot -timeout 120m ./test/vm/

# Quick tests: no VMs.
test:
	$(GO) test -short ./...

# The main job: a Debian root filesystem → ingot image → boot it.
demo: build
	$(BIN)/ingot image --rootfs "$$(test/fixtures/debian-rootfs.sh)" --version $(VERSION) --output $(OUT) --autologin
	$(BIN)/ingot vm $(OUT)/ingot_$(VERSION).raw

# The main job from source: ingot build && ingot image && ingot vm.
demo-source: build
	$(BIN)/ingot build
	$(BIN)/ingot image --version $(VERSION) --output $(OUT) --autologin
	$(BIN)/ingot vm $(OUT)/ingot_$(VERSION).raw

bench: build
	$(GO) test -tags vm -run XXX -bench . -benchtime 1x -timeout 150m ./test/vm/

fuzz:
	$(GO) test -run XXX -fuzz FuzzRead -fuzztime 30s ./format/gpt
	$(GO) test -run XXX -fuzz FuzzOpen -fuzztime 30s ./format/uki
	$(GO) test -run XXX -fuzz FuzzOpen -fuzztime 30s ./format/fat
	$(GO) test -run XXX -fuzz FuzzEntries -fuzztime 30s ./format/logwrites
	$(GO) test -run XXX -fuzz FuzzParseCmdline -fuzztime 30s ./initrd
	$(GO) test -run XXX -fuzz '^FuzzReadHeader$$' -fuzztime 30s -fuzzminimizetime 3s ./format/luks2
	$(GO) test -run XXX -fuzz '^FuzzParseToken$$' -fuzztime 30s ./seal
	$(GO) test -run XXX -fuzz '^FuzzParseRecipe$$' -fuzztime 30s ./spec
	$(GO) test -run XXX -fuzz '^FuzzParseSets$$' -fuzztime 30s ./spec
	$(GO) test -run XXX -fuzz '^FuzzUnpack$$' -fuzztime 30s ./build/fetch
	$(GO) test -run XXX -fuzz '^FuzzParseManifest$$' -fuzztime 30s ./artifact
	$(GO) test -run XXX -fuzz '^FuzzParseVeritySig$$' -fuzztime 30s ./trust
	$(GO) test -run XXX -fuzz '^FuzzSignedData$$' -fuzztime 30s ./trust

clean:
	rm -rf $(BIN) $(OUT)
