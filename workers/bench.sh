#!/usr/bin/env bash
# Echo throughput and latency of 2 workers per language against a `hose
# broker` process, driven by hosebench at a fixed rate:
#
#   workers/bench.sh [RATE] [DURATION] [LANGUAGES...]     (defaults: 5000 10s go python cpp)
#
# Builds hose, hosebench and the C++ example into a temporary directory.
# Set PYTHON to an interpreter that imports zmq (default /usr/bin/python3),
# and EXTRA_PY / EXTRA_CPP / EXTRA_GO to pass more worker flags.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
RATE=${1:-5000}
DUR=${2:-10s}
shift $(( $# > 2 ? 2 : $# )) || true
LANGS=${*:-go python cpp}
PYTHON=${PYTHON:-/usr/bin/python3}
BIN=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$BIN"
}
trap cleanup EXIT

go build -o "$BIN/" ./cmd/hose ./cmd/hosebench
cmake -S workers/cpp -B "$BIN/cpp" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BIN/cpp" -j "$(nproc)" >/dev/null

port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for lang in $LANGS; do
  FRONT="tcp://127.0.0.1:$(port)"
  BACK="tcp://127.0.0.1:$(port)"
  "$BIN/hose" broker -frontend "$FRONT" -backend "$BACK" -log-level warn & BROKER=$!
  PIDS+=("$BROKER")
  WORKERS=()
  for _ in 1 2; do
    case $lang in
      go) "$BIN/hose" worker -backend "$BACK" -handler echo -log-level warn ${EXTRA_GO:-} & ;;
      python) (cd workers/python && exec "$PYTHON" -m hoseworker --backend "$BACK" --log-level warning ${EXTRA_PY:-} examples.jobs:echo) & ;;
      cpp) "$BIN/cpp/hose-cpp-worker" --backend "$BACK" --job echo --quiet ${EXTRA_CPP:-} & ;;
    esac
    WORKERS+=($!)
    PIDS+=($!)
  done
  # Wait until both workers have registered.
  for _ in $(seq 100); do
    n=$("$BIN/hose" ping -frontend "$FRONT" 2>/dev/null | awk '$1=="workers"{print $2}' || true)
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.1
  done
  echo "=== $lang: 2 workers, echo, $RATE/s for $DUR"
  "$BIN/hosebench" -broker "$FRONT" -rate "$RATE" -duration "$DUR" -quiet
  kill "${WORKERS[@]}" "$BROKER" 2>/dev/null || true
  wait "${WORKERS[@]}" "$BROKER" 2>/dev/null || true
done
