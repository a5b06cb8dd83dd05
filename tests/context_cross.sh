#!/bin/sh
# tests/context_cross.sh: build tests/context_test.c with loop/context.c and the
# assembly switch for this machine, and for AArch64 with a cross compiler run
# under qemu-user, each at -O2 and -O0 (plus the ucontext fallback at -O2).
# Needs no configure: an empty config.h stands in for the generated one.
#
# Environment: top_srcdir (default .), CC (default cc), AARCH64_CC (default
# aarch64-linux-gnu-gcc), QEMU_AARCH64 (default qemu-aarch64), AARCH64_SYSROOT
# (default /usr/aarch64-linux-gnu), VERBOSE=1 to show every test's output.
# The AArch64 part needs the Debian packages gcc-aarch64-linux-gnu and
# qemu-user; without them it is skipped. Exit 0 if everything that ran passed.
set -u

src=${top_srcdir:-.}
cc=${CC:-cc}
xcc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU_AARCH64:-qemu-aarch64}
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
cflags="-Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE"

if [ ! -f "$src/tests/context_test.c" ] || [ ! -f "$src/loop/context.c" ]; then
    echo "FAIL: cannot find tests/context_test.c and loop/context.c under '$src' (set top_srcdir)"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/context_cross.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
mkdir "$work/inc" && : >"$work/inc/config.h" || exit 1

if command -v timeout >/dev/null 2>&1; then
    limit="timeout 300"
else
    limit=
fi

passed=0
failed=0
skipped=0

# check NAME COMPILER RUNNER BACKEND OPT: build and run one configuration.
# BACKEND is the .S file's CPU name, or "ucontext". RUNNER may be empty.
check() {
    name=$1 compiler=$2 runner=$3 backend=$4 opt=$5
    exe="$work/context_test.$$.$passed.$failed"
    if [ "$backend" = ucontext ]; then
        srcs="$src/loop/context.c"
        def=-DCIO_CONTEXT_UCONTEXT=1
    else
        srcs="$src/loop/context.c $src/loop/context_$backend.S"
        def=-DCIO_CONTEXT_UCONTEXT=0
    fi
    # shellcheck disable=SC2086 # word splitting of flag lists is intended
    if ! $compiler $opt $cflags $def -I"$work/inc" -I"$src/loop" -o "$exe" \
        "$src/tests/context_test.c" $srcs -lm >"$work/log" 2>&1; then
        cat "$work/log"
        echo "FAIL: $name (does not build)"
        failed=$((failed + 1))
        return
    fi
    start=$(date +%s)
    # shellcheck disable=SC2086
    $limit $runner "$exe" >"$work/log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    summary=$(tail -n 1 "$work/log")
    if [ $rc -eq 0 ] && grep -q ' 0 failed' "$work/log"; then
        [ "${VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$work/log"
        echo "PASS: $name ($summary; ${secs}s)"
        passed=$((passed + 1))
    else
        sed 's/^/    /' "$work/log"
        echo "FAIL: $name (exit status $rc)"
        failed=$((failed + 1))
    fi
}

# Native: the assembly switch for this CPU, and the ucontext fallback.
native=$($cc -dumpmachine 2>/dev/null)
case $native in
x86_64-* | amd64-*) native_cpu=x86_64 ;;
aarch64-* | arm64-*) native_cpu=aarch64 ;;
*) native_cpu= ;;
esac
if [ -n "$native_cpu" ]; then
    for opt in -O2 -O0; do
        check "native $native_cpu asm $opt" "$cc" "" "$native_cpu" "$opt"
    done
else
    echo "SKIP: native asm (no assembly switch for '$native')"
    skipped=$((skipped + 1))
fi
check "native ${native_cpu:-${native:-unknown}} ucontext -O2" "$cc" "" ucontext -O2

# AArch64 through a cross compiler and qemu user-mode emulation.
if command -v "$xcc" >/dev/null 2>&1 && command -v "$qemu" >/dev/null 2>&1; then
    for opt in -O2 -O0; do
        check "aarch64 asm $opt (qemu)" "$xcc" "$qemu -L $sysroot" aarch64 "$opt"
    done
    check "aarch64 ucontext -O2 (qemu)" "$xcc" "$qemu -L $sysroot" ucontext -O2
else
    echo "SKIP: aarch64 (needs gcc-aarch64-linux-gnu and qemu-user)"
    skipped=$((skipped + 1))
fi

if [ $skipped -gt 0 ]; then
    echo "context_cross: $passed passed, $failed failed, $skipped skipped"
else
    echo "context_cross: $passed passed, $failed failed"
fi
[ $failed -eq 0 ]
