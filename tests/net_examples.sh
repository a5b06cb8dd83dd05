#!/bin/sh
# tests/net_examples.sh: the asyncio documentation's networking examples,
# against each other and against python3's asyncio as the peer nobody here
# wrote: coreio server <- asyncio client, asyncio server <- coreio client, for
# TCP and UDP, plus add_reader and create_connection(sock=...). Loopback only.
set -u
b=${top_builddir:-.}
s=${top_srcdir:-.}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
. "$(dirname "$0")/testlib.sh"
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null; done' EXIT


expect() { # $1: name, $2: expected output, $3: actual output
    if [ "$3" = "$2" ]; then pass "$1"; else bad "$1: got [$3], expected [$2]"; fi
}

free_port() { # a port free now on 127.0.0.1 for $1 (tcp/udp)
    "$py" -c "import socket,sys; k=socket.SOCK_STREAM if sys.argv[1]=='tcp' else socket.SOCK_DGRAM
s=socket.socket(socket.AF_INET,k); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"
}

wait_line() { # $1: file, $2: text; waits up to 10 s for the text to appear
    i=0
    while [ $i -lt 100 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

tmp=$(mktemp -d)
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

expect "watch_fd" "Received: abc" "$("$b/examples/watch_fd")"
expect "socket_connect" "Received: abc" "$("$b/examples/socket_connect")"

# TCP: coreio server, coreio client, then asyncio client.
port=$(free_port tcp)
"$b/examples/tcp_echo_server" "$port" >"$tmp/tcp_server.out" 2>&1 &
pids="$pids $!"
wait_line "$tmp/tcp_server.out" "Serving on" || bad "tcp_echo_server did not start"
expect "tcp_echo_client -> tcp_echo_server" "Data sent: 'Hello World!'
Data received: 'Hello World!'
The server closed the connection" "$(timeout 10 "$b/examples/tcp_echo_client" "$port")"
out=$(timeout 10 "$py" - "$port" <<'PY'
import asyncio, sys
async def main():
    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]))
    w.write(b'asyncio says hi'); await w.drain()
    data = await r.read(100); eof = await r.read(100)
    print(data.decode(), 'EOF' if eof == b'' else 'no EOF')
asyncio.run(main())
PY
)
expect "asyncio client -> tcp_echo_server" "asyncio says hi EOF" "$out"
wait_line "$tmp/tcp_server.out" "Data received: 'asyncio says hi'" &&
    pass "tcp_echo_server logged the asyncio client" || bad "tcp_echo_server log: $(cat "$tmp/tcp_server.out")"

# TCP: asyncio server, coreio client.
port=$(free_port tcp)
"$py" - "$port" >"$tmp/py_tcp.out" 2>&1 <<'PY' &
import asyncio, sys
class Echo(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d); self.t.close()
async def main():
    srv = await asyncio.get_running_loop().create_server(Echo, '127.0.0.1', int(sys.argv[1]))
    print('listening', flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
PY
pids="$pids $!"
wait_line "$tmp/py_tcp.out" listening || bad "asyncio TCP server did not start"
expect "tcp_echo_client -> asyncio server" "Data sent: 'Hello World!'
Data received: 'Hello World!'
The server closed the connection" "$(timeout 10 "$b/examples/tcp_echo_client" "$port")"

# UDP: coreio server with coreio and asyncio clients.
port=$(free_port udp)
"$b/examples/udp_echo_server" "$port" >"$tmp/udp_server.out" 2>&1 &
pids="$pids $!"
wait_line "$tmp/udp_server.out" "Starting UDP server" || bad "udp_echo_server did not start"
sleep 0.2
expect "udp_echo_client -> udp_echo_server" "Send: Hello World!
Received: Hello World!
Close the socket
Connection closed" "$(timeout 10 "$b/examples/udp_echo_client" "$port")"
out=$(timeout 10 "$py" - "$port" <<'PY'
import asyncio, sys
class C(asyncio.DatagramProtocol):
    def __init__(self, done): self.done = done
    def connection_made(self, t): t.sendto(b'datagram from asyncio')
    def datagram_received(self, d, a): self.done.set_result(d)
async def main():
    loop = asyncio.get_running_loop(); done = loop.create_future()
    t, _ = await loop.create_datagram_endpoint(lambda: C(done), remote_addr=('127.0.0.1', int(sys.argv[1])))
    print((await asyncio.wait_for(done, 5)).decode()); t.close()
asyncio.run(main())
PY
)
expect "asyncio client -> udp_echo_server" "datagram from asyncio" "$out"

# UDP: asyncio server, coreio client.
port=$(free_port udp)
"$py" - "$port" >"$tmp/py_udp.out" 2>&1 <<'PY' &
import asyncio, sys
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d, a)
async def main():
    await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=('127.0.0.1', int(sys.argv[1])))
    print('listening', flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
PY
pids="$pids $!"
wait_line "$tmp/py_udp.out" listening || bad "asyncio UDP server did not start"
expect "udp_echo_client -> asyncio server" "Send: Hello World!
Received: Hello World!
Close the socket
Connection closed" "$(timeout 10 "$b/examples/udp_echo_client" "$port")"

# The README's "Write a service": the upper service on two workers, talked to
# by socat, stopped by SIGTERM with every worker's count reported.
if command -v socat >/dev/null 2>&1; then
    port=$(free_port tcp)
    "$b/examples/upper_service" "$port" >"$tmp/upper.out" 2>"$tmp/upper.err" &
    upid=$!
    pids="$pids $upid"
    wait_line "$tmp/upper.err" "upper: ready" || bad "upper_service did not start"
    expect "socat -> upper_service" "HELLO
WORLD" "$(printf 'hello\nworld\n' | timeout 10 socat -t2 - "TCP:127.0.0.1:$port")"
    kill -TERM "$upid"
    wait "$upid"
    expect "upper_service exits 0 on SIGTERM" "0" "$?"
    expect "upper_service counts on both workers" "2 workers, 2 lines" \
        "$(awk '/a worker served/ { n++; l += $4 } END { print n " workers, " l " lines" }' "$tmp/upper.out")"
else
    echo "SKIP: upper_service (socat not found)"
fi

exit $fail
