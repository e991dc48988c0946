#!/usr/bin/env bash
# Model check of the ndshm protocol (ndshm.pml) with spin: exhaustive safety runs (torn
# reads, ordering, lost wake-ups as invalid end states) for 2 and 3 slots, 1-2 readers and a
# writer that may die at any step and is taken over; a liveness run (writer progress, weak
# fairness); then three mutations of the protocol that the model must catch, so the check
# is known to be able to fail. Exits non-zero on any unexpected result.
#   tests/model/check.sh [workdir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
cp "$here/ndshm.pml" .
CC=${CC:-gcc}
fail=0
total_states=0

# run NAME EXPECT(ok|error) SPIN_DEFINES PAN_CFLAGS PAN_ARGS
run() {
    local name=$1 expect=$2 defs=$3 cflags=$4 args=$5
    # shellcheck disable=SC2086
    spin $defs -a ndshm.pml >/dev/null
    # shellcheck disable=SC2086
    $CC -O2 -w $cflags -DCOLLAPSE -DMEMLIM=1024 -o pan pan.c
    # shellcheck disable=SC2086
    ./pan $args >pan.out 2>&1 || true
    local errors states
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
    states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' pan.out | head -1)
    if grep -q "reached -DMEMLIM bound\|search not completed" pan.out; then
        echo "FAIL $name: search incomplete (memory bound)"
        fail=1
        return
    fi
    if [ -z "$errors" ]; then
        echo "FAIL $name: no result from pan"
        cat pan.out
        fail=1
        return
    fi
    if [ "$expect" = ok ] && [ "$errors" -ne 0 ]; then
        echo "FAIL $name: $errors error(s)"
        grep -E "pan:|assertion|invalid end|acceptance" pan.out | head -5
        fail=1
    elif [ "$expect" = error ] && [ "$errors" -eq 0 ]; then
        echo "FAIL $name: the mutation was not caught"
        fail=1
    else
        echo "ok   $name: errors $errors (expected $expect), $states states"
        if [ "$expect" = ok ]; then total_states=$((total_states + states)); fi
    fi
}

S="-DSAFETY -DNOCLAIM"
run "safety N=2 R=1 V=4 crash=1" ok "-DN=2 -DR=1 -DMAXV=4 -DCRASHES=1" "$S" "-m1000000"
run "safety N=3 R=1 V=4 crash=1" ok "-DN=3 -DR=1 -DMAXV=4 -DCRASHES=1" "$S" "-m1000000"
run "safety N=2 R=1 V=3 crash=2" ok "-DN=2 -DR=1 -DMAXV=3 -DCRASHES=2" "$S" "-m1000000"
run "safety N=2 R=2 V=2 crash=1" ok "-DN=2 -DR=2 -DMAXV=2 -DCRASHES=1" "$S" "-m1000000"
run "safety N=2 R=1 V=3 close" ok "-DN=2 -DR=1 -DMAXV=3 -DCRASHES=1 -DCLOSE_AT_END" "$S" "-m1000000"
run "progress N=2 R=1 V=3 crash=1" ok "-DN=2 -DR=1 -DMAXV=3 -DCRASHES=1" "" "-a -f -m1000000"
run "mutation: wake checked before notify" error \
    "-DN=2 -DR=1 -DMAXV=3 -DCRASHES=0 -DBUG_WAKE_BEFORE_NOTIFY" "$S" "-m1000000"
run "mutation: reader ignores R4" error "-DN=2 -DR=1 -DMAXV=3 -DCRASHES=0 -DBUG_NO_RECHECK" \
    "$S" "-m1000000"
run "mutation: takeover without repair" error "-DN=2 -DR=1 -DMAXV=4 -DCRASHES=1 -DBUG_NO_REPAIR" \
    "$S" "-m1000000"
run "mutation: takeover without W6 for the dead writer" error \
    "-DN=2 -DR=2 -DMAXV=2 -DCRASHES=1 -DBUG_NO_TAKEOVER_NOTIFY" "$S" "-m1000000"
echo "states explored (correct model, all runs): $total_states"
exit $fail
