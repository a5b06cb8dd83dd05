#!/bin/bash
# tests/coreiod_upgrade.sh: the zero-loss restart (SIGUSR2, coreiod(8)) on
# every kind of listener, and its failures. One coreiod with a tcp listener
# per balance mode, a udp one and a unix one:
#  - SIGUSR2: the pid file names a new process, which serves every listener
#    (also one on *:PORT, a socket per address family on each worker)
#    on the very same sockets (the same socket inodes, as ss(8) shows), the unix
#    socket's file stays, the old process exits; an echo connection opened
#    before keeps working until the old one drains it;
#  - eight upgrades in a row leave the same number of descriptors, and the
#    pid file (which the old process must not remove) names the new one;
#  - a file that no longer parses: the new process fails, the old one logs
#    "upgrade failed" and serves on, the pid file unchanged;
#  - a file that adds a listener on a port something else holds: the new
#    process takes the sockets, then fails; it lets them go as they were, so
#    a prober connecting all along never needs to send a SYN twice, and the
#    old process serves on;
#  - a file that moves one listener to another port and drops one: the new
#    process takes the sockets of the others, binds the moved one anew, and
#    the old one drains the rest;
#  - a new process that hangs before it answers (a module whose constructor
#    never returns): after upgrade_timeout (5 s here) the old one ends it and
#    serves on; and with another such upgrade under way, SIGTERM to the old
#    one stops it at once, not after upgrade_timeout, and ends the new one
#    too; the pid file goes.
# Exit 0: pass, 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

tmp=$(mktemp -d)
cleanup() {
    local p
    p=$(cat "$tmp/pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null || true
    [ -n "${first:-}" ] && kill -KILL "$first" 2>/dev/null || true
    [ -n "${hung:-}" ] && kill -KILL "$hung" 2>/dev/null || true
    [ -n "${holder:-}" ] && kill -KILL "$holder" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/testlib.sh"

gone_within() {
    for _ in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
    return 1
}
# Wait up to $2 seconds for the pid file to name a process other than $1; print it.
next_pid() {
    local p
    for _ in $(seq $(($2 * 20))); do
        p=$(cat "$tmp/pid" 2>/dev/null || true)
        [ -n "$p" ] && [ "$p" != "$1" ] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}
# The inodes of the listening sockets on tcp (udp) port $1, on one line.
tcp_inode() { ss -Hltne "sport = :$1" | sed -n 's/.*ino:\([0-9]*\).*/\1/p' | sort -u | tr '\n' ' '; }
udp_inode() { ss -Hlune "sport = :$1" | sed -n 's/.*ino:\([0-9]*\).*/\1/p' | sort -u | tr '\n' ' '; }
echo_tcp() { printf 'ping\n' | timeout 5 socat -t 2 - "TCP:127.0.0.1:$1" 2>/dev/null || true; }
echo_udp() { printf 'ping\n' | timeout 5 socat -t 2 - "UDP:127.0.0.1:$1" 2>/dev/null || true; }
echo_unix() { printf 'ping\n' | timeout 5 socat -t 2 - "UNIX-CONNECT:$1" 2>/dev/null || true; }
echo_tcp6() { printf 'ping\n' | timeout 5 socat -t 2 - "TCP6:[::1]:$1" 2>/dev/null || true; }
# Listener d (*:PORT) has a socket per family on each worker when this host has IPv6.
if [ -e /proc/net/if_inet6 ]; then v6=yes; else v6=no; fi
all_echo() {
    [ "$(echo_tcp "$pr")" = ping ] && [ "$(echo_tcp "$ph")" = ping ] &&
        [ "$(echo_udp "$pu")" = ping ] && [ "$(echo_unix "$tmp/s.sock")" = ping ] &&
        [ "$(echo_tcp "$pd")" = ping ] && { [ $v6 = no ] || [ "$(echo_tcp6 "$pd")" = ping ]; }
}

read -r pr ph pu pm pd < <("$py" "$srcdir/tests/coreiod_peer.py" ports 5)
config() { # $1: the port of listener "moved"
    cat <<EOF
[global]
workers = 2
admin = off
drain_timeout = 1s
upgrade_timeout = 5s

[listener r]
service = echo
address = 127.0.0.1:$pr
balance = reuseport

[listener h]
service = echo
address = 127.0.0.1:$ph
balance = handoff

[listener u]
service = echo
protocol = udp
address = 127.0.0.1:$pu

[listener x]
service = echo
protocol = unix
address = $tmp/s.sock

[listener moved]
service = echo
address = 127.0.0.1:$1

[listener d]
service = echo
address = *:$pd
EOF
}
config "$pm" >"$tmp/c.ini"
# An absolute path: the upgrade starts the program file as the kernel names it.
"$bin" -c "$tmp/c.ini" --pid-file "$tmp/pid" >"$tmp/log" 2>&1 &
disown
first=$(next_pid "" 10) || { bad "no pid file"; show "$tmp/log"; exit 1; }
all_echo && pass "every listener echoes" || { bad "no echo"; show "$tmp/log"; exit 1; }
before="$(tcp_inode "$pr") $(tcp_inode "$ph") $(udp_inode "$pu") $(tcp_inode "$pd")"

# A connection opened before the upgrade, held across it.
"$py" - "$pr" >"$tmp/held.out" 2>&1 <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
s.sendall(b"before\n"); print(f.readline().decode().strip(), flush=True)
time.sleep(0.6)   # the upgrade happens meanwhile; the old process drains us for 1 s
s.sendall(b"during\n"); print(f.readline().decode().strip(), flush=True)
print("eof" if s.recv(10) == b"" else "more", flush=True)
EOF
held=$!
sleep 0.2

kill -USR2 "$first"
second=$(next_pid "$first" 15) || { bad "no new pid after SIGUSR2"; show "$tmp/log"; exit 1; }
pass "SIGUSR2: process $second serves in place of $first"
gone_within "$first" 10 && pass "the old process exits" || bad "the old process is still there"
wait "$held" || true
[ "$(tr '\n' ' ' <"$tmp/held.out")" = "before during eof " ] &&
    pass "a connection held across the upgrade is served, then closed by the drain" ||
    { bad "held connection: $(cat "$tmp/held.out")"; }
after="$(tcp_inode "$pr") $(tcp_inode "$ph") $(udp_inode "$pu") $(tcp_inode "$pd")"
[ "$before" = "$after" ] && pass "the very same listening sockets (inodes $after)" ||
    bad "the sockets changed: $before -> $after"
[ -S "$tmp/s.sock" ] && all_echo && pass "every listener echoes, the unix socket's file kept" ||
    { bad "no echo after the upgrade"; show "$tmp/log"; }
nd=$([ $v6 = yes ] && echo 4 || echo 2)
all=$((8 + nd))
grep -q "upgrade: process $second took $all of our $all listening sockets" "$tmp/log" &&
    pass "it took all $all sockets (2 workers: 2+2 reuseport, 1 handoff, 2 udp, 1 unix, $nd on *:PORT)" ||
    { bad "not every socket taken"; grep "took" "$tmp/log" || true; }

# Descriptors stay the same over more upgrades, and the pid file outlives each old process.
n0=$(ls "/proc/$second/fd" | wc -l)
cur=$second
kept=0
for i in $(seq 8); do
    kill -USR2 "$cur"
    nxt=$(next_pid "$cur" 15) || { bad "upgrade $i"; show "$tmp/log"; exit 1; }
    gone_within "$cur" 10 || bad "process $cur did not exit"
    [ "$(cat "$tmp/pid" 2>/dev/null)" = "$nxt" ] && kept=$((kept + 1))
    cur=$nxt
done
sleep 0.3
n1=$(ls "/proc/$cur/fd" | wc -l)
[ "$n0" = "$n1" ] && pass "eight more upgrades: $n1 descriptors, as before" ||
    { bad "descriptors: $n0 before, $n1 after"; ls -l "/proc/$cur/fd"; }
[ $kept = 8 ] && pass "each time the pid file names the new process after the old one exits" ||
    bad "the pid file was lost $((8 - kept)) times of 8"

# A file that does not parse: the new process fails, the old one serves on.
echo "[global]
workers = lots" >"$tmp/c.ini"
kill -USR2 "$cur"
if wait_line "$tmp/log" "upgrade failed, going on as before" 15; then
    pass "a bad file: the upgrade fails and says so"
else
    bad "no failure logged"; show "$tmp/log"
fi
[ "$(cat "$tmp/pid")" = "$cur" ] && kill -0 "$cur" && all_echo &&
    pass "the old process serves on, named by the pid file" || bad "the old process is gone"

# A port the new process cannot bind, after it took every socket: it fails and lets
# them go untouched. A prober connects meanwhile; TCP_INFO's total_retrans says
# whether a SYN had to be sent again (a socket left refusing new connections).
read -r pbusy < <("$py" "$srcdir/tests/coreiod_peer.py" ports 1)
"$py" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(300)' "$pbusy" &
holder=$!
{ config "$pm"; printf '\n[listener busy]\nservice = echo\naddress = 127.0.0.1:%s\n' "$pbusy"; } >"$tmp/c.ini"
"$py" - "$pr" "$tmp/stop" >"$tmp/probe.out" 2>&1 <<'EOF' &
import os, socket, struct, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
n = resent = failed = 0
while not os.path.exists(stop):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        resent += struct.unpack_from("I", info, 100)[0] > 0  # tcpi_total_retrans
        s.close()
    except OSError:
        failed += 1
    n += 1
    time.sleep(0.01)
print(n, resent, failed)
EOF
prober=$!
nfail=$(grep -c "upgrade failed" "$tmp/log" || true)
sleep 0.2
kill -USR2 "$cur"
for _ in $(seq 300); do
    [ "$(grep -c "upgrade failed" "$tmp/log")" -gt "$nfail" ] && break
    sleep 0.05
done
sleep 0.5
touch "$tmp/stop"
wait "$prober" || true
read -r pn present pfailed <"$tmp/probe.out" || true
grep -q "listener busy .*cannot open" "$tmp/log" && [ "$(grep -c "upgrade failed" "$tmp/log")" -gt "$nfail" ] &&
    pass "a port taken by another program: the new process fails after taking the sockets" ||
    { bad "no such failure"; show "$tmp/log"; }
[ "${pn:-0}" -gt 10 ] && [ "$present" = 0 ] && [ "$pfailed" = 0 ] &&
    pass "$pn connections meanwhile, none refused, none needing a second SYN" ||
    { bad "prober: $(cat "$tmp/probe.out")"; }
[ "$(cat "$tmp/pid")" = "$cur" ] && all_echo && pass "the old process serves on, on every listener" ||
    bad "the old process no longer serves"
kill "$holder" 2>/dev/null || true

# Listener "moved" changes port, "h" goes away.
config "$pm" | sed "s/^address = 127.0.0.1:$pm$/address = 127.0.0.1:$ph/" |
    "$py" -c 'import sys; t = sys.stdin.read(); a = t.index("[listener h]"); b = t.index("[listener u]"); sys.stdout.write(t[:a] + t[b:])' >"$tmp/c.ini"
kill -USR2 "$cur"
nxt=$(next_pid "$cur" 15) || { bad "no upgrade with the changed file"; show "$tmp/log"; exit 1; }
gone_within "$cur" 10 || bad "process $cur did not exit"
grep -q "upgrade: process $nxt took $((5 + nd)) of our $all listening sockets" "$tmp/log" &&
    pass "a changed file: the sockets of unchanged listeners are taken, the others not" ||
    { bad "what was taken"; grep "took" "$tmp/log" | tail -1; }
[ "$(echo_tcp "$ph")" = ping ] && [ "$(echo_tcp "$pr")" = ping ] &&
    pass "the moved listener serves its new port (the old socket drained away)" ||
    { bad "no echo on the moved listener"; show "$tmp/log"; }
[ "$(echo_tcp "$pm")" = "" ] && pass "nothing serves the old port any more" || bad "the old port answers"

# A new process that never answers; SIGTERM meanwhile.
printf '#include <unistd.h>\n__attribute__((constructor)) static void hang(void) { for (;;) pause(); }\n' \
    >"$tmp/hang.c"
${CC:-cc} -shared -fPIC -o "$tmp/hang.so" "$tmp/hang.c"
printf '[module hang]\npath = hang.so\n' >>"$tmp/c.ini"
# Start an upgrade to the hanging program; print the new process's pid.
hang_upgrade() {
    local n=$(grep -c "upgrade: starting" "$tmp/log") p=""
    kill -USR2 "$nxt"
    for _ in $(seq 200); do
        [ "$(grep -c "upgrade: starting" "$tmp/log")" -gt "$n" ] && p=$(pgrep -P "$nxt" | head -1) &&
            [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}
hung=$(hang_upgrade) || bad "the upgrade does not start"
if wait_line "$tmp/log" "upgrade failed, going on as before: .*timed out" 15; then
    pass "a new process silent for upgrade_timeout: the upgrade fails and says so"
else
    bad "no timeout logged"; show "$tmp/log"
fi
! kill -0 "$hung" 2>/dev/null && [ "$(cat "$tmp/pid")" = "$nxt" ] && all_echo &&
    pass "it was ended, and the old process serves on" || bad "after the timeout"
hung=$(hang_upgrade) || bad "the second upgrade does not start"
sleep 0.5
kill -0 "$hung" 2>/dev/null && pass "the new process hangs before answering (pid $hung)" ||
    bad "no hanging new process"
t0=$(date +%s%N)
kill -TERM "$nxt"
gone_within "$nxt" 10 &&
    pass "SIGTERM while the upgrade waits: the old process exits in $((($(date +%s%N) - t0) / 1000000)) ms" ||
    bad "it does not exit"
grep -q "upgrade: stop requested; process $hung ended" "$tmp/log" && ! kill -0 "$hung" 2>/dev/null &&
    pass "and ends the new process" || { bad "the new process was not ended"; show "$tmp/log"; }
[ ! -e "$tmp/pid" ] && pass "and removes its pid file" || bad "the pid file is left"

# The new process's side, against tests/upgrade_peer.py as the old process: sockets
# it was lent are its own only once the old one has let go ("A"). Stopped before,
# it leaves them accepting; after, its drain refuses new connections on them.
read -r pe < <("$py" "$srcdir/tests/coreiod_peer.py" ports 1)
printf '[global]\nworkers = 1\nadmin = off\ndrain_timeout = 1s\n\n[listener e]\nservice = echo\naddress = 127.0.0.1:%s\n' \
    "$pe" >"$tmp/lent.ini"
for ack in no yes; do
    out=$(timeout 60 "$py" "$srcdir/tests/upgrade_peer.py" "$bin" "$tmp/lent.ini" "$pe" "$ack" 2>"$tmp/lent.$ack.log") ||
        { bad "upgrade_peer.py $ack: $out"; show "$tmp/lent.$ack.log"; }
    want=$([ $ack = no ] && echo yes || echo no)
    [ "$out" = "OK answered=7 accepts=$want" ] &&
        pass "stopped $([ $ack = no ] && echo before || echo after) the old process lets go: the socket $([ $want = yes ] && echo "still accepts" || echo "refuses new connections")" ||
        { bad "ack=$ack: $out"; show "$tmp/lent.$ack.log"; }
done
exit $fail
