#!/usr/bin/env bash
# The project's test command (README and CI run exactly this): installs missing Debian packages,
# builds in ./build-test, runs the whole meson test suite, then reruns the memory-sensitive suites
# under valgrind (leaks and invalid accesses fail the run).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh --tests
# Debian 12's OpenBLAS 0.3.21 computes wrong results or crashes with its AVX-512 kernels on some
# processors; the reference products in the tests run its AVX2 kernels unless the caller chose.
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE-Haswell}"
builddir=${MONE_BUILD_DIR:-build-test}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" --buildtype=debugoptimized
fi
ninja -C "$builddir"
jobs=$(nproc)
meson test -C "$builddir" --print-errorlogs --num-processes "$jobs"
meson test -C "$builddir" --print-errorlogs --num-processes "$jobs" --setup valgrind --suite memcheck
