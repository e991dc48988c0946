#!/usr/bin/env bash
# Installs the build into a temporary prefix, then:
#  1. runs the installed tools (bin/ndshm, bin/ndshm-bench, bin/ndshm-bridge) with an EMPTY
#     environment (env -i: no LD_LIBRARY_PATH, no PATH), so they must find the installed
#     libndshm.so.0 through their install RPATH ($ORIGIN/../lib), and does a publish / cat /
#     ls / rm round trip with the installed ndshm;
#  2. checks the installed manual pages and bash completion;
#  3. imports the installed Python package with an empty environment, when `cmake --install`
#     installed one;
#  4. builds the quick start against the prefix twice, with find_package(ndshm) (CMake package
#     config) and with pkg-config (ndshm.pc), and runs it.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
fail() { echo "install: FAIL: $*" >&2; exit 1; }

# ---- 1. the installed tools start with an empty environment
shm="$tmp/shm"
mkdir "$shm"
clean() { env -i NDSHM_DIR="$shm" "$@"; }
test -x "$prefix/bin/ndshm" || fail "bin/ndshm was not installed"
out=$(clean "$prefix/bin/ndshm" --help 2>&1) || fail "env -i bin/ndshm --help: $out"
grep -q "usage: ndshm <command>" <<<"$out" || fail "bin/ndshm --help printed: $out"
out=$(clean "$prefix/bin/ndshm" --version 2>&1) || fail "env -i bin/ndshm --version: $out"
out=$(clean "$prefix/bin/ndshm" pub install-check --dtype f4 '[[1, 2], [3, 4.5]]' 2>&1) ||
    fail "env -i bin/ndshm pub: $out"
out=$(clean "$prefix/bin/ndshm" cat install-check 2>&1) || fail "env -i bin/ndshm cat: $out"
grep -qF '[[1.  2. ]' <<<"$out" || fail "bin/ndshm cat printed: $out"
out=$(clean "$prefix/bin/ndshm" ls 2>&1) || fail "env -i bin/ndshm ls: $out"
grep -q "^install-check " <<<"$out" || fail "bin/ndshm ls printed: $out"
out=$(clean "$prefix/bin/ndshm" rm install-check 2>&1) || fail "env -i bin/ndshm rm: $out"
for tool in ndshm-bench ndshm-bridge; do
    if [ -x "$build/bin/$tool" ]; then
        test -x "$prefix/bin/$tool" || fail "bin/$tool was built but not installed"
        out=$(clean "$prefix/bin/$tool" --help 2>&1) || fail "env -i bin/$tool --help: $out"
        # and through the installed ndshm, which finds it next to itself
        sub=${tool#ndshm-}
        out=$(clean "$prefix/bin/ndshm" "$sub" --help 2>&1) || fail "env -i bin/ndshm $sub --help: $out"
    fi
done
echo "install: bin/ndshm$( [ -x "$prefix/bin/ndshm-bench" ] && echo ", ndshm-bench")$( [ -x "$prefix/bin/ndshm-bridge" ] && echo ", ndshm-bridge") run with env -i"

# ---- 2. manual pages and completion
man1=$(find "$prefix" -path '*/man1' -type d | head -1)
[ -n "$man1" ] || fail "no man1 directory installed"
for c in $("$build/bin/ndshm" help --commands) ""; do
    page="$man1/ndshm${c:+-$c}.1"
    [ -s "$page" ] || fail "manual page $page missing"
    grep -q '^\.TH ' "$page" || fail "$page is not a manual page"
done
comp=$(find "$prefix" -path '*bash-completion/completions/ndshm' | head -1)
[ -n "$comp" ] || fail "bash completion not installed"
bash -n "$comp" || fail "bash completion does not parse"
echo "install: manual pages and bash completion installed"

# ---- 3. the Python package, when the install has one
pkg=$(find "$prefix" -path '*/ndshm/__init__.py' | head -1)
if [ -n "$pkg" ] && [ -x /usr/bin/python3 ]; then
    site=$(dirname "$(dirname "$pkg")")
    out=$(cd "$tmp" && env -i NDSHM_DIR="$shm" PYTHONPATH="$site" /usr/bin/python3 -c '
import ndshm, sys
print(ndshm.__file__)' 2>&1) || fail "import ndshm from $site: $out"
    case "$out" in "$prefix"/*) ;; *) fail "import ndshm found $out, not the installed package" ;; esac
    echo "install: import ndshm from the prefix with an empty environment"
else
    echo "install: no Python package in the prefix: import check not run"
fi

# ---- 4. consumers
mkdir -p "$tmp/app"
cp "$src/examples/quickstart.c" "$tmp/app/"
cat >"$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(ndshm REQUIRED)
add_executable(qs quickstart.c)
target_link_libraries(qs ndshm::ndshm)
CM
export NDSHM_DIR="$tmp"   # keep the quick start's channel out of /dev/shm
cmake -S "$tmp/app" -B "$tmp/app/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/app/b" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$tmp/app/b/qs"
cc "$tmp/app/quickstart.c" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs ndshm) \
    -o "$tmp/qs-pc"
LD_LIBRARY_PATH="$prefix/lib" "$tmp/qs-pc"
echo "install: find_package and pkg-config consumers built and ran"
