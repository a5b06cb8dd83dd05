# tests/testlib.sh: what the integration scripts share, sourced by each as
#     . "$(dirname "$0")/testlib.sh"
# A verdict per check (the script exits with $fail), and the first lines of a
# file to explain a failure.
fail=0
pass() { echo "PASS: $*"; }
bad() {
    echo "FAIL: $*"
    fail=1
}
# The first $2 (default 40) lines of file $1, indented.
show() { sed -n "1,${2:-40}s/^/    | /p" "$1" 2>/dev/null || true; }
# Wait up to $3 seconds for a line of file $1 to match the extended regex $2.
wait_line() {
    for _ in $(seq $(($3 * 20))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# Build the test module tests/$1 into $tmp/$2 against the build tree's
# libcoreio (its coreio-uninstalled.pc); exit 1 with the compiler's words if
# it does not build. Needs $builddir, $srcdir, $cc and $tmp.
build_module() {
    local flags
    flags=$(PKG_CONFIG_PATH=$(cd "$builddir" && pwd) pkg-config --cflags --libs coreio)
    # shellcheck disable=SC2086 # flags is a list of words
    "$cc" -std=gnu11 -Wall -Werror -shared -fPIC -o "$tmp/$2" "$srcdir/tests/$1" $flags \
        2>"$tmp/cc.log" || {
        echo "FAIL: tests/$1 does not build:"
        show "$tmp/cc.log"
        exit 1
    }
}
