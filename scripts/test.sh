#!/usr/bin/env bash
# The test command: installs what is missing, builds and runs every test suite.
#   1. release build (-Werror): unit, multi-process stress, CLI, Python, model check
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build of the C suites
#   3. ThreadSanitizer build (seqlock copies as relaxed atomics) of the C suites
#   4. clang libFuzzer build: each fuzz target for a short run over its seed corpus
# Environment: NDSHM_STRESS_SECONDS (default 4) sets how long stress tests run;
# NDSHM_SOAK=1 turns on the long soak tests; NDSHM_TEST_STAGES="release asan tsan fuzz" picks
# stages.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ndshm_install_deps

stages=${NDSHM_TEST_STAGES:-release asan tsan fuzz}
jobs=$(nproc 2>/dev/null || echo 2)
export NDSHM_STRESS_SECONDS=${NDSHM_STRESS_SECONDS:-4}
export CTEST_OUTPUT_ON_FAILURE=1

build() { # dir, cmake args...
    local dir=$1
    shift
    cmake -S . -B "$dir" -DNDSHM_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
}

for stage in $stages; do
    case $stage in
    release)
        echo "== release build and tests"
        build out/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
        (cd out/release && ctest -j2 -LE fuzz --timeout 900)
        ;;
    asan)
        echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
        build out/asan -DCMAKE_BUILD_TYPE=Debug -DNDSHM_SANITIZER="address;undefined" \
            -DNDSHM_BUILD_BENCH=OFF
        (cd out/asan && ASAN_OPTIONS=detect_leaks=1 ctest -j2 -LE "fuzz|python|nosan|model" \
            --timeout 900)
        ;;
    tsan)
        echo "== ThreadSanitizer"
        build out/tsan -DCMAKE_BUILD_TYPE=Debug -DNDSHM_SANITIZER=thread -DNDSHM_BUILD_BENCH=OFF
        # one test at a time: TSan slows shared-memory copies ~50x, and two heavy tests at
        # once on two cores starved the bridge test's stream
        (cd out/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0" \
            ctest -j1 -LE "fuzz|python|nosan|model" --timeout 900)
        ;;
    fuzz)
        echo "== libFuzzer (short runs over the seed corpora)"
        CC=clang build out/fuzz -DCMAKE_BUILD_TYPE=Debug -DNDSHM_BUILD_FUZZ=ON \
            -DNDSHM_SANITIZER="address;undefined" -DNDSHM_BUILD_BENCH=OFF \
            -DNDSHM_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link"
        (cd out/fuzz && ctest -L fuzz --timeout 900)
        ;;
    *)
        echo "unknown stage: $stage" >&2
        exit 2
        ;;
    esac
done
echo "== all stages passed: $stages"
