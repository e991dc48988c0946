#!/usr/bin/env bash
# gst-inspect-1.0 finds both elements through GST_PLUGIN_PATH (the build tree) and documents
# every property of theirs with a description, and every enum value.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { # element, properties...
    local el=$1 out
    shift
    out=$(gst-inspect-1.0 "$el" 2>&1) || fail "gst-inspect-1.0 $el: $out"
    for p in "$@"; do
        # "  name   : description" with a description of at least 20 characters
        grep -Eq "^  $p +: .{20,}" <<<"$out" || fail "$el: property '$p' missing or undocumented"
    done
    echo "$out"
}
sink=$(check ndshmsink channel slots mode unlink-on-close zero-copy takeover stats)
src=$(check ndshmsrc channel mode timeout on-writer-gone zero-copy timestamp-mode is-live \
    audio-rate drop-messages stats do-timestamp)
for v in '(0): latest' '(1): every' '(0): eos' '(1): error' '(2): wait' '(0): publish' '(1): pts'; do
    grep -Fq "$v" <<<"$src" || fail "ndshmsrc: enum value '$v' not listed"
done
for t in "$sink" "$src"; do
    grep -q "GRAY16_LE" <<<"$t" && grep -q "F64LE" <<<"$t" || fail "pad template caps incomplete"
done
plugin=$(gst-inspect-1.0 ndshm 2>&1) || fail "gst-inspect-1.0 ndshm: $plugin"
grep -q "ndshmsink" <<<"$plugin" && grep -q "ndshmsrc" <<<"$plugin" ||
    fail "plugin 'ndshm' does not list both elements"
echo "gst-inspect: ndshmsink and ndshmsrc documented"
