#!/usr/bin/env bash
# Installs what the build and tests need, builds, and runs every test:
#   1. the regular build: unit tests, CLI end-to-end tests against the built binaries,
#      fuzz seed corpora;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build running the same tests;
#   3. the libFuzzer targets (clang), each for FUZZ_SECONDS (default 30).
# This is the command .ci/run calls. Environment: FUZZ_SECONDS, SKIP_FUZZ=1, SKIP_ASAN=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh

jobs=$(nproc)
step() { printf '\n=== %s\n' "$*"; }

step "build (RelWithDebInfo) into build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

step "tests"
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "build with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPALISADE_SANITIZE=ON \
    -DPALISADE_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  step "tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  seconds=${FUZZ_SECONDS:-30}
  step "libFuzzer targets (clang), ${seconds}s each"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPALISADE_FUZZ=ON -DPALISADE_SANITIZE=ON -DPALISADE_BENCH=OFF >/dev/null
  cmake --build build-fuzz -j "$jobs" --target spiffe_id_fuzzer policy_loader_fuzzer \
    x509_svid_fuzzer path_normalization_fuzzer http_session_fuzzer
  mkdir -p build-fuzz/artifacts
  for target in spiffe_id policy_loader x509_svid path_normalization http_session; do
    # New inputs go to a scratch corpus; the committed seeds are read-only inputs.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    dict=()
    [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
    "build-fuzz/bin/${target}_fuzzer" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$root/build-fuzz/artifacts/${target}-" \
      "$scratch" "tests/fuzz/corpus/$target" 2>&1 | tail -n 12
    rm -rf "$scratch"
    trap - EXIT
  done
fi

step "all tests passed"
