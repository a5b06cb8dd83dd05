#!/bin/bash
# tests/coreiod_systemd.sh: coreiod under a service manager that speaks
# systemd's protocols (coreiod(8), "systemd"). tests/sd_launch.py makes the
# listening sockets and starts coreiod socket-activated exactly as systemd
# does (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, descriptors from 3);
# tests/sd_notify_recv.py is the notify socket. Checks:
#  - coreiod serves on the sockets it was given, matched to its listeners by
#    name (a tcp and a udp one; it could not bind them itself: the launcher's
#    sockets have no SO_REUSEPORT), and says READY=1 with a STATUS;
#  - SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1;
#  - SIGUSR2 (upgrade): the new process says MAINPID=<its pid> and READY=1,
#    serves the same sockets, and the old one exits without STOPPING=1;
#  - SIGTERM: STOPPING=1 from the process that serves, exit 0;
#  - a socket named after a tcp listener that is a udp one: coreiod refuses
#    to start, naming the listener; a name no listener has: a warning.
# Exit 0: pass, 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/testlib.sh"

# Wait up to $3 seconds for a line of file $1 matching the regex $2.
# Wait up to $2 seconds until process $1 is gone.
gone_within() {
    for _ in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
    return 1
}
# One line echoed over tcp/udp port $2 ($1: TCP or UDP): prints what came back.
echo_over() { printf 'ping %s\n' "$1" | timeout 5 socat -t 2 - "$1:127.0.0.1:$2" 2>/dev/null || true; }

read -r p1 p2 < <("$py" "$srcdir/tests/coreiod_peer.py" ports 2)
cat >"$tmp/c.ini" <<EOF
[global]
workers = 2
admin = off
drain_timeout = 1s

[listener e]
service = echo
address = 127.0.0.1:$p1

[listener u]
service = echo
protocol = udp
address = 127.0.0.1:$p2
EOF

"$py" "$srcdir/tests/sd_notify_recv.py" --sender "$tmp/notify" >"$tmp/notify.log" 2>"$tmp/recv.err" &
pids+=($!)
disown
wait_line "$tmp/recv.err" "listening" 5 || { bad "sd_notify_recv.py did not start"; exit 1; }

"$py" "$srcdir/tests/sd_launch.py" --notify "$tmp/notify" --listen "e=tcp:127.0.0.1:$p1" \
    --listen "u=udp:127.0.0.1:$p2" -- "$bin" -c "$tmp/c.ini" >"$tmp/log" 2>&1 &
launcher=$!
pids+=($launcher)

if wait_line "$tmp/notify.log" "READY=1" 10; then
    main=$(sed -n 's/^\([0-9]*\) .*READY=1.*/\1/p' "$tmp/notify.log" | head -1)
    pids+=("$main")
    pass "READY=1 from coreiod (pid $main)"
else
    bad "no READY=1"; show "$tmp/log"; exit 1
fi
grep -q "READY=1;STATUS=serving: 2 workers, 2 listeners" "$tmp/notify.log" &&
    pass "STATUS says what it serves" || { bad "no STATUS"; show "$tmp/notify.log"; }
grep -q "socket activation: 2 sockets from systemd" "$tmp/log" &&
    [ "$(grep -c '(inherited sockets)' "$tmp/log")" = 2 ] &&
    pass "both listeners serve the sockets systemd gave" ||
    { bad "the listeners did not take the sockets"; show "$tmp/log"; }
[ "$(echo_over TCP "$p1")" = "ping TCP" ] && pass "tcp echo on the activated socket" ||
    bad "no tcp echo"
[ "$(echo_over UDP "$p2")" = "ping UDP" ] && pass "udp echo on the activated socket" ||
    bad "no udp echo"

kill -HUP "$main"
if wait_line "$tmp/notify.log" "^$main RELOADING=1;MONOTONIC_USEC=[0-9]+$" 5 &&
    wait_line "$tmp/log" "reloaded" 5 && [ "$(grep -c "^$main READY=1" "$tmp/notify.log")" = 2 ]; then
    pass "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1"
else
    bad "SIGHUP notifications"; show "$tmp/notify.log"
fi

kill -USR2 "$main"
if wait_line "$tmp/notify.log" "^[0-9]+ MAINPID=[0-9]+" 10; then
    new=$(sed -n 's/^[0-9]* MAINPID=\([0-9]*\).*/\1/p' "$tmp/notify.log" | head -1)
    pids+=("$new")
    sender=$(sed -n 's/^\([0-9]*\) MAINPID=.*/\1/p' "$tmp/notify.log" | head -1)
    [ "$new" = "$sender" ] && [ "$new" != "$main" ] &&
        pass "SIGUSR2: the new process says MAINPID=$new itself" ||
        bad "MAINPID $new sent by $sender"
    wait_line "$tmp/notify.log" "^$new READY=1" 5 && pass "the new process says READY=1" ||
        bad "no READY=1 from the new process"
else
    bad "no MAINPID after SIGUSR2"; show "$tmp/log"; exit 1
fi
gone_within "$main" 10 && pass "the old process exits" || bad "the old process is still there"
grep -q "^$main STOPPING=1" "$tmp/notify.log" && bad "the old process said STOPPING=1" ||
    pass "the old process says nothing of stopping"
[ "$(echo_over TCP "$p1")" = "ping TCP" ] && [ "$(echo_over UDP "$p2")" = "ping UDP" ] &&
    pass "the new process serves the same sockets" || bad "no echo after the upgrade"

kill -TERM "$new"
if gone_within "$new" 10 && wait_line "$tmp/notify.log" "^$new STOPPING=1" 2; then
    pass "SIGTERM: STOPPING=1, and the new process exits"
else
    bad "SIGTERM of the new process"; show "$tmp/notify.log"
fi

# A udp socket under the tcp listener's name: refused, naming the listener.
if timeout 10 "$py" "$srcdir/tests/sd_launch.py" --listen "e=udp:127.0.0.1:$p1" \
    --listen "nobody=tcp:127.0.0.1:0" -- "$bin" -c "$tmp/c.ini" >"$tmp/bad.log" 2>&1; then
    bad "coreiod started with a udp socket for a tcp listener"
else
    grep -q "listener e: the socket given under its name is not a stream socket" "$tmp/bad.log" &&
        pass "a socket of the wrong type is refused, naming the listener" ||
        { bad "no clear error for the wrong socket type"; show "$tmp/bad.log"; }
fi

# A socket no listener names: a warning, and coreiod serves on.
"$py" "$srcdir/tests/sd_launch.py" --listen "e=tcp:127.0.0.1:$p1" --listen "u=udp:127.0.0.1:$p2" \
    --listen "nobody=tcp:127.0.0.1:0" -- "$bin" -c "$tmp/c.ini" >"$tmp/extra.log" 2>&1 &
extra=$!
pids+=($extra)
if wait_line "$tmp/extra.log" "ready" 10 &&
    grep -q 'socket "nobody" from systemd: no listener of that name' "$tmp/extra.log"; then
    pass "a socket no listener names: a warning"
else
    bad "no warning for an unnamed socket"; show "$tmp/extra.log"
fi
kill -TERM "$extra"
wait "$extra" && pass "and it stops cleanly" || bad "exit status $? after SIGTERM"
exit $fail
