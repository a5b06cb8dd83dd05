#!/bin/sh
# bench/callgrind_udp.sh [BUILD]: user-space instructions per UDP echo
# datagram, server side: bench/echo_coreio --udp under callgrind, and
# tools/coreio-bench --mode udp (not under valgrind) sending 64-byte
# datagrams for 2 s per workload, the one-in-flight ping-pong and 16
# endpoints with 8 in flight each. Each workload is counted between
# callgrind_control -z and -d and divided by the datagrams echoed, so the
# server's start-up is left out. Needs valgrind; prints a Markdown table.
set -eu
b=${1:-.}
tmp=$(mktemp -d)
srv_pid=
trap '[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + $$ % 20000))

# The binary itself, not libtool's wrapper script, so that callgrind sees the server.
LD_LIBRARY_PATH="$b/.libs" TMPDIR=$tmp taskset -c 0 valgrind --tool=callgrind \
    --callgrind-out-file="$tmp/cg.out" "$b/bench/.libs/echo_coreio" --udp "$port" \
    >"$tmp/server.log" 2>&1 &
srv_pid=$!
i=0
until grep -q listening "$tmp/server.log"; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "callgrind_udp.sh: the server did not start" >&2; exit 1; }
    sleep 0.1
done

# Instructions per datagram of one 2 s run with $1 endpoints of depth $2.
per_datagram() {
    TMPDIR=$tmp callgrind_control -z "$srv_pid" >/dev/null 2>&1
    taskset -c 1 "$b/tools/coreio-bench" --mode udp --json -c "$1" -p "$2" -d 2 \
        127.0.0.1 "$port" >"$tmp/load.json"
    TMPDIR=$tmp callgrind_control -d "$srv_pid" >/dev/null 2>&1
    f=$(ls -t "$tmp"/cg.out.* | head -1)
    until grep -q '^totals:' "$f" 2>/dev/null; do sleep 0.1; done
    n=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' "$tmp/load.json")
    [ "${n:-0}" -gt 0 ] || { echo "callgrind_udp.sh: no datagram echoed" >&2; exit 1; }
    echo $(($(sed -n 's/^summary: *//p' "$f") / n))
}
echo "| coreio UDP echo, 64-byte datagrams | instructions per datagram (server, user space) |"
echo "|---|---:|"
echo "| 1 endpoint x depth 1 | $(per_datagram 1 1) |"
echo "| 16 endpoints x depth 8 | $(per_datagram 16 8) |"
