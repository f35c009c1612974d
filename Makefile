# hose: the two set-up commands are `make run` (hosebench at 5 000 jobs/s on
# an embedded cluster) and `make test` (installs libzmq when missing, then
# runs every test under the race detector).
export PATH := $(PATH):/usr/local/go/bin

GO ?= go

.PHONY: deps build run test bench fmt vet fuzz chaos

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
	$(GO) vet -tags chaos ./chaos/
	$(GO) test -race -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory chaos

# fuzz runs every fuzz target for FUZZTIME from its seed corpus (the
# protocol targets are seeded from testdata/vectors); see scripts/fuzz.sh.
# A crasher is saved under the package's testdata/fuzz/FuzzX; rerun it with
# go test -run 'FuzzX/NAME' ./PKG. Eleven targets at 3s add under a minute.
FUZZTIME ?= 3s

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# chaos runs the chaos suite (package chaos, build tag chaos): a real broker
# and worker processes under load, one fault per scenario, and the summary
# table README shows (also written to CHAOS_TABLE). Without -race: the
# processes are separate and the timings are the point. The partition
# scenario needs root and iproute2; elsewhere it is skipped.
CHAOS_TABLE ?= chaos-table.md

chaos:
	HOSE_CHAOS_TABLE=$(CURDIR)/$(CHAOS_TABLE) $(GO) test -tags chaos -count 1 -timeout 10m -v ./chaos/

bench: deps
	$(GO) test -run XXX -bench . -benchtime 3s ./broker

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
