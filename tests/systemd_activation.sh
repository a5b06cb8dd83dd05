#!/bin/bash
# tests/systemd_activation.sh: the systemd stand-ins other integration tests
# start coreiod with. tests/sd_launch.py passes tcp, unix and udp sockets to
# tests/sd_probe (which takes them with framework/systemd.c) named, in order,
# at descriptors 3, 4, 5, with LISTEN_PID its own pid, as systemd sockets are
# made (non-blocking, listening, SO_REUSEPORT when asked, mode 0666); it
# keeps its own copies, forwards SIGHUP, SIGUSR2 and SIGTERM, and ends as its
# child ends. tests/sd_notify_recv.py prints the probe's READY=1 message with
# the sender's pid. The probe then sees the same through systemd's own
# systemd-socket-activate, and tools/coreiod.service.in with
# examples/systemd/coreiod.socket passes systemd-analyze verify (each part
# skipped when its tool is missing). Exit 0: pass, 77: skip (no python3), 1: fail.
set -euo pipefail
. "$(dirname "$0")/testlib.sh"

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
[ -f "$srcdir/tests/sd_launch.py" ] || srcdir=$(cd "$(dirname "$0")/.." && pwd)
probe=$builddir/tests/sd_probe
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
if [ -z "$py" ]; then
    echo "SKIP: python3 not found"
    exit 77
fi
launch=("$py" "$srcdir/tests/sd_launch.py")

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    # The commands too, which a killed launcher leaves running (if the pid is still theirs).
    for p in $(sed -n 's/^\(closed \)\{0,1\}pid=//p' "$tmp"/out "$tmp"/sig "$tmp"/sa "$tmp"/kept 2>/dev/null); do
        grep -qa 'sd_probe\|sleep' "/proc/$p/cmdline" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# Wait up to 10 s for file $1 to hold a line matching $2.
wait_for() {
    local _
    for _ in $(seq 100); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Set $status to the exit status of background process $1, killed if it lasts past 10 s.
wait_exit() {
    local _
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null && echo "killed $1 after 10 s"
    status=0
    wait "$1" 2>/dev/null || status=$?
}

# Connect to $1 (HOST:PORT or a unix path) and print the line the server sends.
ask() {
    "$py" - "$1" <<'EOF'
import socket, sys
a = sys.argv[1]
if a.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(a)
else:
    host, port = a.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
s.settimeout(10)
print(s.makefile().readline().strip())
EOF
}

# Check that file $1 has a line equal to $2.
has_line() {
    if grep -qxF -- "$2" "$1"; then
        pass "$3"
    else
        bad "$3: no line \"$2\" in:"
        show "$1"
    fi
}

# ---- sd_launch.py and sd_notify_recv.py ------------------------------------------
"$py" "$srcdir/tests/sd_notify_recv.py" --sender "$tmp/notify" >"$tmp/notes" 2>"$tmp/recv.err" &
pids+=($!)
wait_for "$tmp/recv.err" "listening on" || bad "sd_notify_recv.py did not start"

timeout 30 "${launch[@]}" --notify "$tmp/notify" --listen http=tcp:127.0.0.1:0 \
    --listen ctl=unix:"$tmp/ctl.sock" --listen dns=udp:127.0.0.1:0,reuseport \
    -- "$probe" --serve --exit 7 >"$tmp/out" 2>"$tmp/err" &
launcher=$!
pids+=("$launcher")
wait_for "$tmp/err" "^sd_launch: dns " || bad "sd_launch.py printed no addresses"
port=$(sed -n 's/^sd_launch: http tcp:127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/err")
uport=$(sed -n 's/^sd_launch: dns udp:127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/err")
[ "$(stat -c %a "$tmp/ctl.sock")" = 666 ] && pass "unix socket file mode 0666" ||
    bad "unix socket mode $(stat -c %a "$tmp/ctl.sock")"
got_http=$(ask "127.0.0.1:$port" || true)
got_ctl=$(ask "$tmp/ctl.sock" || true)
status=0
wait "$launcher" || status=$?
[ "$status" = 7 ] && pass "the launcher exits with the command's status" || bad "status $status"
[ "$got_http" = http ] && [ "$got_ctl" = ctl ] && pass "the probe accepted on both listeners" ||
    bad "answers \"$got_http\" \"$got_ctl\""
has_line "$tmp/out" "listen rc=0 n=3" "three sockets, LISTEN_PID the command's own pid"
has_line "$tmp/out" "fd=3 name=http type=stream family=inet listening=1 cloexec=1 nonblock=1 reuseport=0 addr=127.0.0.1:$port" "tcp at 3"
has_line "$tmp/out" "fd=4 name=ctl type=stream family=unix listening=1 cloexec=1 nonblock=1 reuseport=0 addr=$tmp/ctl.sock" "unix at 4"
has_line "$tmp/out" "fd=5 name=dns type=dgram family=inet listening=0 cloexec=1 nonblock=1 reuseport=1 addr=127.0.0.1:$uport" "udp with SO_REUSEPORT at 5"
has_line "$tmp/out" "env LISTEN_PID=unset LISTEN_FDS=unset LISTEN_FDNAMES=unset NOTIFY_SOCKET=set" \
    "LISTEN_* consumed, NOTIFY_SOCKET kept"
has_line "$tmp/out" "notify rc=1" "the notification was sent"
pid=$(sed -n 's/^pid=//p' "$tmp/out")
wait_for "$tmp/notes" "READY=1" || true
has_line "$tmp/notes" "$pid READY=1;STATUS=probe 3 sockets;MAINPID=$pid" \
    "sd_notify_recv.py printed the datagram and its sender"

# No descriptor but 0-2 and the sockets reaches the command, though the launcher had more.
timeout 30 "${launch[@]}" --listen a=tcp:127.0.0.1:0 --listen b=tcp:127.0.0.1:0 -- "$py" -c '
import os
print(" ".join(str(fd) for fd in range(64) if os.path.exists("/proc/self/fd/%d" % fd)))' \
    >"$tmp/fds" 2>/dev/null 3>/dev/null 9>/dev/null || true
[ "$(cat "$tmp/fds")" = "0 1 2 3 4" ] && pass "only 0-2 and the sockets are open in the command" ||
    bad "open in the command: $(cat "$tmp/fds")"

# Signals are forwarded; the launcher dies by the signal its command died by.
"${launch[@]}" --listen a=tcp:127.0.0.1:0 -- "$probe" --wait >"$tmp/sig" 2>/dev/null &
launcher=$!
pids+=("$launcher")
wait_for "$tmp/sig" "^waiting" || bad "the probe did not start"
kill -HUP "$launcher"
wait_for "$tmp/sig" "^signal 1$" && pass "SIGHUP forwarded" || bad "SIGHUP not forwarded"
kill -USR2 "$launcher"
wait_for "$tmp/sig" "^signal 12$" && pass "SIGUSR2 forwarded" || bad "SIGUSR2 not forwarded"
kill -TERM "$launcher"
wait_exit "$launcher"
[ "$status" = 143 ] && grep -qx "signal 15" "$tmp/sig" && pass "SIGTERM forwarded, its death passed on" ||
    bad "after SIGTERM: status $status"

# The launcher keeps its copy: the port still takes connections once the command closed its own.
"${launch[@]}" --listen a=tcp:127.0.0.1:0 -- /bin/sh -c 'exec 3>&-; echo "closed pid=$$"; exec sleep 20' \
    >"$tmp/kept" 2>"$tmp/kept.err" &
launcher=$!
pids+=("$launcher")
wait_for "$tmp/kept" "^closed pid=" || bad "the command did not start"
kport=$(sed -n 's/^sd_launch: a tcp:127.0.0.1:\([0-9]*\)$/\1/p' "$tmp/kept.err")
if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5)" "$kport"; then
    pass "the launcher keeps the listening socket open"
else
    bad "port $kport refused once the command closed its descriptor"
fi
kill -TERM "$launcher"
wait_exit "$launcher"
[ "$status" = 143 ] || bad "the launcher ended with status $status on SIGTERM"

# The first run's unix socket file is left behind, as systemd leaves it: bound again over it.
[ -S "$tmp/ctl.sock" ] && "${launch[@]}" --listen c=unix:"$tmp/ctl.sock" -- /bin/true 2>"$tmp/stale" &&
    pass "a stale unix socket file is replaced" || { bad "a stale socket file"; show "$tmp/stale"; }

status=0
"${launch[@]}" --listen a=tcp:127.0.0.1:0 >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] && pass "usage error: status 2" || bad "no command: status $status"
status=0
"${launch[@]}" --listen a=tcp:localhost -- /bin/true >/dev/null 2>&1 || status=$?
[ "$status" = 1 ] && pass "a bad address: status 1" || bad "bad address: status $status"

# ---- systemd's own launcher, for comparison --------------------------------------
if command -v systemd-socket-activate >/dev/null 2>&1; then
    sport=$("$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    timeout 30 systemd-socket-activate -l "127.0.0.1:$sport" -l "$tmp/sa.sock" --fdname=web:ctl \
        -E NOTIFY_SOCKET="$tmp/notify" -- "$probe" --serve >"$tmp/sa" 2>"$tmp/sa.err" &
    launcher=$!
    pids+=("$launcher")
    for _ in $(seq 50); do [ -S "$tmp/sa.sock" ] && break; sleep 0.1; done
    got_web=$(ask "127.0.0.1:$sport" || true)
    got_ctl=$(ask "$tmp/sa.sock" || true)
    wait "$launcher" || true
    if [ "$got_web" = web ] && [ "$got_ctl" = ctl ]; then
        pass "systemd-socket-activate: both served"
    else
        bad "systemd-socket-activate: answers \"$got_web\" \"$got_ctl\""
        show "$tmp/sa.err"
    fi
    has_line "$tmp/sa" "listen rc=0 n=2" "systemd-socket-activate: two sockets"
    sed -n 's/ nonblock=[01]//p' "$tmp/sa" >"$tmp/sa.fds"
    has_line "$tmp/sa.fds" "fd=3 name=web type=stream family=inet listening=1 cloexec=1 reuseport=0 addr=127.0.0.1:$sport" \
        "systemd-socket-activate: tcp at 3"
    has_line "$tmp/sa.fds" "fd=4 name=ctl type=stream family=unix listening=1 cloexec=1 reuseport=0 addr=$tmp/sa.sock" \
        "systemd-socket-activate: unix at 4"
    has_line "$tmp/sa" "env LISTEN_PID=unset LISTEN_FDS=unset LISTEN_FDNAMES=unset NOTIFY_SOCKET=set" \
        "systemd-socket-activate: LISTEN_* consumed"
    sapid=$(sed -n 's/^pid=//p' "$tmp/sa")
    wait_for "$tmp/notes" "probe 2 sockets" || true
    has_line "$tmp/notes" "$sapid READY=1;STATUS=probe 2 sockets;MAINPID=$sapid" \
        "systemd-socket-activate: notified"
else
    echo "SKIP: systemd-socket-activate not found"
fi

# ---- the units --------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir "$tmp/units"
    bindir=$(cd "$builddir/tools" && pwd)
    [ -x "$bindir/coreiod" ] || bindir=/bin
    sed -e "s|@bindir@|$bindir|g" -e "s|@sysconfdir@|$tmp|g" \
        "$srcdir/tools/coreiod.service.in" >"$tmp/units/coreiod.service"
    [ -x "$bindir/coreiod" ] || sed -i 's|/bin/coreiod|/bin/true|' "$tmp/units/coreiod.service"
    cp "$srcdir/examples/systemd/coreiod.socket" "$tmp/units/"
    # --man=no: Documentation= names man pages that are installed only by
    # `make install`; whether they resolve depends on the machine, not the units.
    if (cd "$tmp/units" && systemd-analyze verify --man=no coreiod.service coreiod.socket) >"$tmp/verify" 2>&1 &&
        [ ! -s "$tmp/verify" ]; then
        pass "systemd-analyze verify: coreiod.service and coreiod.socket"
    else
        bad "systemd-analyze verify:"
        show "$tmp/verify"
    fi
else
    echo "SKIP: systemd-analyze not found"
fi
exit "$fail"
