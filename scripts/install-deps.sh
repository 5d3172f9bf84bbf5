#!/usr/bin/env bash
# Installs every Debian 12 package Palisade needs to build, test and run its demo.
# Idempotent: when everything is already installed it prints nothing and exits 0.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config ccache clang libclang-rt-14-dev
  # libraries (DESIGN.md "Dependencies")
  libevent-dev libnghttp2-dev libssl-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc libyaml-cpp-dev prometheus-cpp-dev libhttp-parser-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # tests and benchmarks
  curl nghttp2-client wrk openssl python3 python3-grpcio python3-protobuf python3-cryptography
  prometheus iproute2 iptables etcd-server
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
