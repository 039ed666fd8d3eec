#!/usr/bin/env bash
# The sanitizer runs CI makes after the test command:
#  - AddressSanitizer + UndefinedBehaviorSanitizer over the whole suite (build-asan);
#  - ThreadSanitizer over the tests that run the engine's thread pool and the budget controller
#    (build-tsan), where a data race in the project's code fails the run.
# Each build is configured once and reused; tests/tsan.supp lists the uninstrumented libraries whose
# own reports are ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE-Haswell}"
jobs=$(nproc)

[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
meson test -C build-asan --setup asan --print-errorlogs --num-processes "$jobs"

[ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false
ninja -C build-tsan
meson test -C build-tsan --setup tsan --print-errorlogs --num-processes "$jobs" \
  capacity routing kernels forward allocations budget-controller
