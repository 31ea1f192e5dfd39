#!/usr/bin/env bash
# Installs everything Turnpike needs to build, run and test on Debian 12, then configures the
# build directories. Idempotent: safe to run again. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

packages=(
  # toolchain and build
  g++ meson ninja-build pkg-config git ca-certificates
  # libraries
  liburing-dev libabsl-dev libssl-dev zlib1g-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev nlohmann-json3-dev
  # DPDK 22.11 (backend=dpdk). dpdk-testpmd, dpdk-dumpcap and dpdk-telemetry.py are in
  # dpdk-dev since Debian's 22.11.11 (earlier point releases had them in dpdk).
  libdpdk-dev dpdk dpdk-dev
  # test peers and tools
  coturn chromium iproute2 iputils-ping openssl procps python3 curl
  prometheus python3-yaml
  # fuzzing (libFuzzer with ASan + UBSan)
  clang libclang-rt-14-dev
)

export DEBIAN_FRONTEND=noninteractive
need_install=0
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    need_install=1
    break
  fi
done
if [ "$need_install" -eq 1 ] || ! command -v npm >/dev/null; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
  # Debian's nodejs; a machine with a node from elsewhere keeps its own.
  if ! command -v npm >/dev/null; then
    apt-get install -y -q --no-install-recommends nodejs npm
  fi
fi

# Debian starts coturn's service on install where systemd runs; it would hold UDP 3478.
if [ -d /run/systemd/system ] && systemctl is-enabled coturn >/dev/null 2>&1; then
  echo "setup: disabling the coturn service so turnpiked can use port 3478"
  systemctl disable --now coturn || true
fi

# Browser interop test dependencies (playwright-core only; it drives Debian's chromium).
if [ -f tests/integration/browser/package-lock.json ]; then
  (cd tests/integration/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# Build directories: `build` (optimised, with tests and benchmarks) and `build-asan`
# (ASan + UBSan, for the sanitizer test run).
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=debugoptimized
fi
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
fi
echo "setup: done"
