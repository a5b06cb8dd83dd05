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
