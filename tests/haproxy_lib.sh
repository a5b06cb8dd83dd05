# shellcheck shell=bash
# tests/haproxy_lib.sh: what tests/haproxy.sh and tests/rolling_restart.sh
# share, sourced by each after tests/testlib.sh:
#     . "$(dirname "$0")/testlib.sh"
#     . "$(dirname "$0")/haproxy_lib.sh"
# It skips (exit 77) without haproxy, a C compiler or pkg-config; makes $tmp
# and a cleanup trap that kills every process the script started (and each
# one a pid file names: the processes a binary upgrade started are not the
# script's children); and builds tests/whoami_module.c into $tmp/whoami.so.
# The clients are tests/haproxy_peer.py ($peer) and tests/lb_load.py.
# KEEP_TMP=1 keeps $tmp (the logs, the configurations) for a post-mortem.

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
[ -f "$srcdir/tests/whoami_module.c" ] || srcdir=$(cd "$(dirname "$0")/.." && pwd)
bin=$builddir/tools/coreiod
py=/usr/bin/python3 # Debian's (the one on PATH may be another)
[ -x "$py" ] || py=$(command -v python3)
cc=${CC:-cc}
for tool in haproxy "$cc" pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "SKIP: $tool not found"
        exit 77
    }
done
if [ ! -x "$bin" ]; then
    echo "FAIL: $bin not found or not executable"
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") # the upgrade re-executes argv[0]
peer=("$py" "$srcdir/tests/haproxy_peer.py")

tmp=$(mktemp -d)
pids=()
pidfiles=()
hx_cleanup() {
    local p f
    for f in "${pidfiles[@]}"; do
        p=$(cat "$f" 2>/dev/null) && [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${KEEP_TMP:-}" ]; then echo "NOTE: kept $tmp"; else rm -rf "$tmp"; fi
}
trap hx_cleanup EXIT
trap 'exit 1' INT TERM HUP

build_module whoami_module.c whoami.so

# N ports free now on 127.0.0.1, one a word.
free_ports() { "$py" "$srcdir/tests/coreiod_peer.py" ports "$1"; }
# Is process $1 running (not gone, not a zombie)?
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
# Run "$@" every 0.1 s until it succeeds, for at most $1 seconds.
wait_until() {
    local n=$(($1 * 10))
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || return 1
        sleep 0.1
    done
}
# The value of NAME= in the whoami line $2 (empty when absent).
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

# Start coreiod NAME on config $2 (more arguments after), logging to
# $tmp/NAME.log, and wait until it logs ready. Sets $pid.
start_coreiod() {
    local name=$1 conf=$2 log=$tmp/$1.log i=0
    shift 2
    "$bin" -c "$conf" "$@" >"$tmp/$name.out" 2>>"$log" &
    pid=$!
    pids+=("$pid")
    while ! grep -sqF 'coreiod: ready' "$log"; do
        if ! alive "$pid" || [ $i -ge 200 ]; then
            echo "FAIL: coreiod $name did not log 'coreiod: ready' within 10 s; its log:"
            show "$log"
            exit 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
}

# Check and start haproxy on config $1 (log $tmp/haproxy.log), its stats socket
# $tmp/haproxy.sock. Sets $hpid.
start_haproxy() {
    haproxy -c -f "$1" >"$tmp/haproxy-c.log" 2>&1 || {
        echo "FAIL: haproxy -c refuses the configuration:"
        show "$tmp/haproxy-c.log"
        exit 1
    }
    haproxy -db -f "$1" >"$tmp/haproxy.log" 2>&1 &
    hpid=$!
    pids+=("$hpid")
    wait_until 10 "${peer[@]}" stat "$tmp/haproxy.sock" "show info" || {
        echo "FAIL: haproxy's stats socket does not answer; its log:"
        show "$tmp/haproxy.log"
        exit 1
    }
}
# Column $3 (default status: UP, DOWN, DRAIN...) of server $2 of proxy $1 in haproxy's
# "show stat".
hstatus() { "${peer[@]}" field "$tmp/haproxy.sock" "$1" "$2" "${3:-status}"; }
# Has server $2 of proxy $1 passed a health check of its own (HAProxy counts a server
# UP from the start): UP, and its last check's status $3 (L4OK, L7OK)?
checked_up() {
    local c
    c=$(hstatus "$1" "$2" check_status) || return 1
    [ "${c#\* }" = "$3" ] && has_status "$1" "$2" UP
}
# Did no health check of server $2 of proxy $1 fail, ever?
checks_never_failed() {
    [ "$(hstatus "$1" "$2" chkfail)" = 0 ] && [ "$(hstatus "$1" "$2" chkdown)" = 0 ]
}
# Does server $2 of proxy $1 have the status $3 (a prefix: "DRAIN" matches "DRAIN (agent)")?
has_status() {
    local s
    s=$(hstatus "$1" "$2") || return 1
    [ "${s#"$3"}" != "$s" ]
}
# The warnings and errors in log $1, but for lines matching the extended regex $2 (if
# given): each distinct line once, with its count, on one line.
log_complaints() {
    grep -E ': (WARNING|ERROR|CRITICAL):|Sanitizer|runtime error' "$1" |
        { if [ -n "${2:-}" ]; then grep -Ev -- "$2"; else cat; fi; } |
        sed 's/[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*:[0-9][0-9]*/ADDR/g' |
        sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/[\1x] \2/' | paste -sd';' - || true
}
