#!/usr/bin/env bash
# Installs what hose's build and tests need on Debian: libzmq (cgo), the
# toolchains of the Python and C++ workers, and ip(8) for the multi-host
# test in network namespaces (deploy/). Safe to run again: it installs only
# what is missing.
set -euo pipefail

need=()
dpkg -s libzmq3-dev >/dev/null 2>&1 || need+=(libzmq3-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s python3-zmq >/dev/null 2>&1 || need+=(python3-zmq)
dpkg -s cppzmq-dev >/dev/null 2>&1 || need+=(cppzmq-dev)
dpkg -s cmake >/dev/null 2>&1 || need+=(cmake)
dpkg -s g++ >/dev/null 2>&1 || need+=(g++)
dpkg -s iproute2 >/dev/null 2>&1 || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  echo "note: add /usr/local/go/bin to PATH" >&2
fi
