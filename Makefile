# ingot's build: static binaries, no cgo.
GO      ?= go
BIN     ?= bin
export CGO_ENABLED = 0
GOFLAGS_BUILD = -trimpath -ldflags='-s -w -buildid='

.PHONY: all build test test-vm vet fuzz bench clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/ingot ./cmd/ingot-init

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l .)"

test: build
	$(GO) test ./...

clean:
	rm -rf $(BIN)
