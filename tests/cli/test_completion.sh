#!/usr/bin/env bash
# The bash completion (tools/cli/completion/ndshm) completes commands, options (from the
# commands' --help), option values, and channel names (from `ndshm ls --names`) of a private
# NDSHM_DIR. Usage: test_completion.sh BUILD_BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1 src=$2
export NDSHM_DIR=$(mktemp -d)
trap 'rm -rf "$NDSHM_DIR"' EXIT
export PATH="$bin:$PATH"
ndshm pub comp-alpha '[1]' >/dev/null
ndshm pub comp-beta '[2]' >/dev/null
ndshm pub other '[3]' >/dev/null
mkdir "$NDSHM_DIR/recdir"
# shellcheck source=/dev/null
source "$src/tools/cli/completion/ndshm"
complete -p ndshm >/dev/null || { echo "FAIL: no completion registered for ndshm"; exit 1; }
fails=0
# expect "words..." -- wanted... : COMPREPLY must hold every wanted word (and, with =, exactly)
check() {
    local exact=$1; shift
    local words=() want=()
    while [ "$1" != "--" ]; do words+=("$1"); shift; done
    shift
    want=("$@")
    COMP_WORDS=("${words[@]}")
    COMP_CWORD=$((${#words[@]} - 1))
    COMP_LINE="${words[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _ndshm
    local got=" ${COMPREPLY[*]:-} "
    for w in "${want[@]}"; do
        case "$got" in *" $w "*) ;; *) echo "FAIL: '${words[*]}' -> [${got}], missing $w"; fails=$((fails + 1)) ;; esac
    done
    if [ "$exact" = = ] && [ ${#COMPREPLY[@]} -ne ${#want[@]} ]; then
        echo "FAIL: '${words[*]}' -> [${got}], expected exactly [${want[*]}]"; fails=$((fails + 1))
    fi
}
check = ndshm ec -- echo
check + ndshm "" -- ls stat echo watch cat pub record replay rm gc bench
check = ndshm help st -- stat
check = ndshm ls comp- -- comp-alpha comp-beta
check + ndshm watch "" -- comp-alpha comp-beta other
check = ndshm echo comp-a -- comp-alpha
check = ndshm echo comp-alpha --fi -- --field
check + ndshm echo comp-alpha --field ver -- version
check + ndshm cat comp-alpha --sl -- --slice
check = ndshm pub comp-alpha --dtype float1 -- float16
check + ndshm pub comp-alpha --tr -- --transpose
check + ndshm rm --f -- --force
check + ndshm record comp-alpha "$NDSHM_DIR/rec" -- "$NDSHM_DIR/recdir"
check = ndshm replay "$NDSHM_DIR/rec" -- "$NDSHM_DIR/recdir"
check = ndshm replay "$NDSHM_DIR/recdir" comp-b -- comp-beta
check = ndshm stat comp-alpha "" --
# every command of `ndshm --help` is completed
for c in $(ndshm help --commands); do check + ndshm "${c:0:2}" -- "$c"; done
if [ "$fails" -ne 0 ]; then
    echo "completion: $fails failure(s)"
    exit 1
fi
echo "completion: all cases completed as expected"
