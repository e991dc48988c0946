#!/usr/bin/env bash
# Runs the test command N times, each time in a fresh clone, and prints how often each stage
# and each test passed.
#
#   scripts/ci-repeat.sh N [--ref REF] [--repo PATH] [--stages "release asan tsan fuzz"]
#                          [--heavy-build] [--workdir DIR] [--keep]
#
# Each run clones REF (default: main) of the repository this script belongs to (or --repo)
# into a new directory and runs `bash scripts/test.sh` there, one stage at a time
# (NDSHM_TEST_STAGES=<stage>), so a failing stage does not hide the others; a run passes when
# every stage does. Per test, the counts come from ctest's result lines. --heavy-build keeps
# a second clone building from scratch (cmake --build -j$(nproc), over and over) beside the
# runs, as another engineer's build would. Logs stay in the work directory (printed at the
# end; default a new /tmp/ndshm-ci-repeat.XXXXXX); clones of passing runs are removed unless
# --keep. Exit status 0 only if every run passed.
set -uo pipefail

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

n=""
ref=main
repo=$(cd "$(dirname "$0")/.." && pwd)
stages=${NDSHM_TEST_STAGES:-release asan tsan fuzz}
heavy=0
keep=0
work=""
while [ $# -gt 0 ]; do
    case $1 in
    --ref) ref=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --stages) stages=$2; shift 2 ;;
    --heavy-build) heavy=1; shift ;;
    --workdir) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    -*) echo "ci-repeat: unknown option $1" >&2; usage ;;
    *) [ -z "$n" ] || usage; n=$1; shift ;;
    esac
done
case $n in '' | *[!0-9]* | 0) usage ;; esac
git -C "$repo" rev-parse --verify -q "$ref^{commit}" >/dev/null || {
    echo "ci-repeat: $repo has no ref '$ref'" >&2
    exit 2
}
commit=$(git -C "$repo" rev-parse "$ref^{commit}")
[ -n "$work" ] || work=$(mktemp -d /tmp/ndshm-ci-repeat.XXXXXX)
mkdir -p "$work"
results="$work/results.tsv" # run, stage, test, result ("stage" rows: the stage itself)
: >"$results"

heavy_pid=""
stop_heavy() {
    if [ -n "$heavy_pid" ]; then
        kill -- -"$heavy_pid" 2>/dev/null || kill "$heavy_pid" 2>/dev/null || true
        wait "$heavy_pid" 2>/dev/null || true
        heavy_pid=""
    fi
}
trap stop_heavy EXIT
if [ "$heavy" = 1 ]; then
    git clone -q "$repo" "$work/heavy-src"
    git -C "$work/heavy-src" checkout -q "$commit"
    # its own process group, so stop_heavy ends the loop and its compilers together
    setsid bash -c 'while :; do rm -rf "$1/heavy-build"
        cmake -S "$1/heavy-src" -B "$1/heavy-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null 2>&1
        cmake --build "$1/heavy-build" -j"$(nproc)" >/dev/null 2>&1; done' _ "$work" &
    heavy_pid=$!
    echo "== heavy build beside the runs: $work/heavy-build (pid $heavy_pid)"
fi

# Result lines of ctest, e.g. " 3/26 Test  #3: test_name .......   Passed    0.01 sec" or
# "...***Failed", "***Timeout", "***Exception: SegFault": test<TAB>result.
ctest_results() {
    sed -n 's/^ *[0-9]*\/[0-9]* Test *#[0-9]*: \([^ ]*\) [ .]*\(\*\*\*\)\{0,1\}\([A-Za-z][A-Za-z ]*[A-Za-z]\).* [0-9.]* sec.*$/\1\t\3/p' "$1"
}

echo "== $n run(s) of scripts/test.sh, stages: $stages; clones of $repo at $ref (${commit:0:12}); logs in $work"
t_all=$(date +%s)
for i in $(seq "$n"); do
    dir="$work/run-$i"
    rm -rf "$dir"
    mkdir -p "$dir"
    t0=$(date +%s)
    # every run tests the same commit, whatever lands on REF meanwhile
    git clone -q "$repo" "$dir/src" 2>"$dir/clone.log" &&
        git -C "$dir/src" checkout -q "$commit" 2>>"$dir/clone.log" ||
        echo "   run $i: clone failed, see $dir/clone.log"

    run_ok=1
    for stage in $stages; do
        log="$dir/$stage.log"
        s0=$(date +%s)
        (cd "$dir/src" && NDSHM_TEST_STAGES=$stage bash scripts/test.sh) >"$log" 2>&1
        rc=$?
        res=passed
        [ $rc -eq 0 ] || { res=FAILED; run_ok=0; }
        printf '%s\t%s\t%s\t%s\n' "$i" "$stage" "-" "$res" >>"$results"
        ctest_results "$log" | while IFS=$'\t' read -r test result; do
            printf '%s\t%s\t%s\t%s\n' "$i" "$stage" "$test" "$result" >>"$results"
        done
        failed=$(awk -F'\t' -v r="$i" -v s="$stage" '$1==r && $2==s && $3!="-" && $4!="Passed" {printf " %s(%s)", $3, $4}' "$results")
        printf '   run %d/%d  %-8s %-6s %4ds%s\n' "$i" "$n" "$stage" "$res" $(($(date +%s) - s0)) "$failed"
        [ $rc -eq 0 ] || [ -n "$failed" ] || echo "      (no ctest failure: see $log)"
    done
    printf '   run %d/%d  %s in %ds\n' "$i" "$n" "$([ $run_ok = 1 ] && echo passed || echo FAILED)" \
        $(($(date +%s) - t0))
    printf '%s\t%s\t%s\t%s\n' "$i" "*" "-" "$([ $run_ok = 1 ] && echo passed || echo FAILED)" >>"$results"
    if [ $run_ok = 1 ] && [ $keep = 0 ]; then
        rm -rf "$dir/src"
    fi
done
stop_heavy

echo
echo "== summary: $n run(s) at $ref (${commit:0:12})$([ "$heavy" = 1 ] && echo ', with a heavy build beside them'), $(($(date +%s) - t_all)) s"
awk -F'\t' -v n="$n" '
    $2 == "*" { whole += ($4 == "passed") ; next }
    $3 == "-" { st[$2] += ($4 == "passed"); seen[$2] = 1; if (!($2 in ord)) ord[$2] = ++ns; next }
    { key = $2 "\t" $3; runs[key]++; pass[key] += ($4 == "Passed")
      if ($4 != "Passed") fails[key] = fails[key] " " $1 ":" $4
      if (!(key in tord)) tord[key] = ++nt }
    END {
        printf "  whole test command: %d/%d passed\n", whole, n
        for (s in ord) so[ord[s]] = s
        for (k = 1; k <= ns; k++) printf "  stage %-8s %d/%d passed\n", so[k], st[so[k]], n
        for (t in tord) to[tord[t]] = t
        printf "  per test (passed/runs; failing runs as run:result):\n"
        for (k = 1; k <= nt; k++) {
            split(to[k], a, "\t")
            printf "    %-8s %-36s %d/%d%s\n", a[1], a[2], pass[to[k]], runs[to[k]], fails[to[k]]
        }
    }' "$results" | tee "$work/summary.txt"
echo "  logs: $work (summary.txt, results.tsv, run-*/<stage>.log)"
awk -F'\t' -v n="$n" '$2 == "*" && $4 == "passed" {p++} END {exit p == n ? 0 : 1}' "$results"
