#!/usr/bin/env bash
# The sanitizer runs CI makes after the test command:
#  - AddressSanitizer + UndefinedBehaviorSanitizer over the whole suite (build-asan);
#  - ThreadSanitizer over the tests that run the engine's thread pool, the budget controller, the
#    frame scheduler and the element with properties changed from other threads (build-tsan),
#    where a data race in the project's code fails the run. Not under TSan: the meta library's
#    and moneoverlay's tests, which exercise system plugins, cairo and pango (uninstrumented
#    locking) and no thread of the project's.
# Each build is configured once and reused; tests/tsan.supp lists what is ignored in the
# uninstrumented libraries, and the registries are rebuilt (TSan scans plugins in-process).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE-Haswell}"
jobs=$(nproc)

[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
meson test -C build-asan --setup asan --print-errorlogs --num-processes "$jobs"

[ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false
ninja -C build-tsan
rm -f build-tsan/tests/*/registry*.bin
meson test -C build-tsan --setup tsan --print-errorlogs --num-processes "$jobs" \
  capacity routing kernels forward allocations budget-controller scheduler monefilter
