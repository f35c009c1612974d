# hose: the two set-up commands are `make run` (hosebench at 5 000 jobs/s on
# an embedded cluster) and `make test` (installs libzmq when missing, then
# runs every test under the race detector).
export PATH := $(PATH):/usr/local/go/bin

GO ?= go

.PHONY: deps build run test bench fmt vet

deps:
	./scripts/deps.sh
	$(GO) mod download

build: deps
	$(GO) build -o bin/ ./cmd/...

run: deps
	$(GO) run ./cmd/hosebench -rate 5000 -duration 10s

test: deps
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...

bench: deps
	$(GO) test -run XXX -bench . -benchtime 3s ./broker

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
