#!/bin/sh
# tests/interop.sh: coreio against peers nobody here wrote, on loopback: a Unix
# echo server and client with python3's asyncio on the other side, socat
# half-closing a TCP connection, and a raw python socket that first does not
# read (flow control must pause the writer and bound its buffer), then reads,
# then resets the connection mid-write (connection_lost gets the errno, and no
# SIGPIPE kills the process).
set -u
b=${top_builddir:-.}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
. "$(dirname "$0")/testlib.sh"
pids=""
tmp=$(mktemp -d)
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

expect() { if [ "$3" = "$2" ]; then pass "$1"; else bad "$1: got [$3], expected [$2]"; fi; }
wait_line() {
    i=0
    while [ $i -lt 100 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
free_port() {
    "$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

# Unix: coreio server, asyncio client.
"$b/tests/netpeer" unix-echo "$tmp/echo.sock" >"$tmp/unix.out" 2>&1 &
pids="$pids $!"
wait_line "$tmp/unix.out" listening || bad "unix echo server did not start"
out=$(timeout 10 "$py" - "$tmp/echo.sock" <<'PY'
import asyncio, sys
async def main():
    r, w = await asyncio.open_unix_connection(sys.argv[1])
    w.write(b'over a unix socket'); await w.drain(); w.write_eof()
    print((await r.read()).decode())
asyncio.run(main())
PY
)
expect "asyncio unix client -> coreio unix server" "over a unix socket" "$out"

# Unix: asyncio server, coreio client (which half-closes after sending).
"$py" - "$tmp/py.sock" >"$tmp/pyunix.out" 2>&1 <<'PY' &
import asyncio, sys
async def handle(r, w):
    data = await r.read()          # until the client's EOF
    w.write(b'asyncio heard: ' + data); await w.drain(); w.close()
async def main():
    await asyncio.start_unix_server(handle, sys.argv[1])
    print('listening', flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
PY
pids="$pids $!"
wait_line "$tmp/pyunix.out" listening || bad "asyncio unix server did not start"
expect "coreio unix client -> asyncio unix server" "asyncio heard: hello from coreio" \
    "$(timeout 10 "$b/tests/netpeer" unix-client "$tmp/py.sock" "hello from coreio")"

# socat half-closes after sending; the server answers on its open write side.
if command -v socat >/dev/null 2>&1; then
    port=$(free_port)
    "$b/tests/netpeer" halfclose "$port" >"$tmp/half.out" 2>&1 &
    pids="$pids $!"
    wait_line "$tmp/half.out" listening || bad "half-close server did not start"
    expect "socat half-close: data, then the reply after EOF" "abcEOF received" \
        "$(printf abc | timeout 10 socat -t 5 - TCP:127.0.0.1:"$port")"
else
    echo "SKIP: socat half-close (socat not installed)"
fi

# A peer that does not read, then reads, then resets mid-write.
port=$(free_port)
"$b/tests/netpeer" flood "$port" >"$tmp/flood.out" 2>&1 &
flood_pid=$!
pids="$pids $flood_pid"
wait_line "$tmp/flood.out" listening || bad "flood server did not start"
timeout 20 "$py" - "$port" <<'PY'
import socket, struct, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
time.sleep(0.5)                    # not reading: the server must pause
got = 0
while got < 4 * 1024 * 1024:       # now reading: the server resumes
    got += len(s.recv(1 << 20))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()                          # RST while the server is writing
PY
wait "$flood_pid"
status=$?
line=$(grep '^pauses' "$tmp/flood.out")
set -- $line
pauses=$2 resumes=$4 max=$6 high=$8 lost=${10:-}
[ "$status" -eq 0 ] && pass "flood server exited normally (no SIGPIPE)" ||
    bad "flood server exit status $status: $(cat "$tmp/flood.out")"
[ "${pauses:-0}" -ge 1 ] && [ "${resumes:-0}" -ge 1 ] &&
    pass "pause_writing fired $pauses times, resume_writing $resumes times" ||
    bad "flow control: $line"
[ "${max:-999999999}" -le $((${high:-0} + 65536)) ] &&
    pass "write buffer bounded: at most $max bytes (high-water mark $high)" ||
    bad "write buffer grew to $max (high-water mark $high)"
case "$lost" in
ECONNRESET | EPIPE) pass "connection_lost reported $lost after the reset" ;;
*) bad "connection_lost reported '$lost' after the reset" ;;
esac

exit $fail
