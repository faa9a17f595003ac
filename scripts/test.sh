#!/usr/bin/env bash
# Installs what is missing, builds imapguard twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every suite:
# unit tests and fuzz-corpus replay on both builds, and the integration tests
# against a real Dovecot and mbedTLS's own test suites (label mbedtls) on the
# sanitizer build. mbedTLS itself is built once for all three trees
# (cmake/MbedTLS.cmake). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
build() { # dir, cmake args...
  local dir=$1; shift
  cmake -S "$top" -B "$dir" -DIG_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

build build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
build build/asan -DCMAKE_BUILD_TYPE=Debug -DIG_SANITIZE=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== plain build: unit and fuzz-corpus tests"
(cd build/plain && ctest -L 'unit|fuzz' --output-on-failure -j"$jobs")
echo "== ASan+UBSan build: all tests (unit, fuzz corpus, integration with Dovecot)"
(cd build/asan && ctest --output-on-failure -j"$jobs")

# A short libFuzzer pass over every target (clang, ASan+UBSan), starting from
# the committed seed corpus in a scratch copy. IG_FUZZ_SECONDS=0 skips it.
# Workers are threads: the tests that exercise what they share (the
# limiter, kick, reload, the descriptor budget, relays on two workers) run
# once more against a ThreadSanitizer build; any report fails them.
echo "== ThreadSanitizer build: the tests of what workers share"
build build/tsan -DCMAKE_BUILD_TYPE=Debug -DIG_TESTS=OFF \
  -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
(cd tests/integration && IMAPGUARD_BIN="$top/build/tsan/imapguard" IMAPGUARD_SRC="$top" \
  TSAN_OPTIONS=halt_on_error=0 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  test_workers.py test_ratelimit.py test_policy.py test_fdlimit.py test_relay.py)

fuzz_seconds=${IG_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ] && command -v clang >/dev/null; then
  echo "== libFuzzer: ${fuzz_seconds}s per target"
  CC=clang build build/fuzz -DCMAKE_BUILD_TYPE=Debug -DIG_SANITIZE=ON -DIG_FUZZ=ON -DIG_TESTS=ON
  scratch=$(mktemp -d /tmp/imapguard-fuzz.XXXXXX)
  trap 'rm -rf "$scratch"' EXIT
  for bin in build/fuzz/tests/fuzz_*; do
    name=$(basename "$bin"); corpus=${name#fuzz_}
    mkdir -p "$scratch/$corpus"
    cp tests/fuzz/corpus/"$corpus"/* "$scratch/$corpus"/
    "$bin" "$scratch/$corpus" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
      2>"$scratch/$name.log" || { tail -50 "$scratch/$name.log"; exit 1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$name.log")
    echo "$name: $runs runs, no crash"
  done
fi
