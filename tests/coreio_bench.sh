#!/bin/bash
# tests/coreio_bench.sh: tools/coreio-bench against python3's asyncio as the
# peer. Runs --json for 1 s in echo mode (and briefly in udp and http modes)
# against echo and HTTP/1.1 keep-alive servers on 127.0.0.1, checks that
# requests were made without errors, and that a bad option exits with 2.
# Exit 0: pass, 77: skipped (no python3), 1: fail. Run from the build tree;
# COREIO_BENCH names the binary elsewhere.
set -u
bench=${COREIO_BENCH:-./tools/coreio-bench}
py=$(command -v python3) || {
    echo "SKIP: python3 not found"
    exit 77
}
if [ ! -x "$bench" ]; then
    echo "FAIL: $bench not found or not executable"
    exit 1
fi

tmp=$(mktemp -d) || exit 1
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail=0
pass() { echo "PASS: $*"; }
bad() {
    echo "FAIL: $*"
    fail=1
}

# The peers: TCP echo, UDP echo, HTTP/1.1 keep-alive; prints their three ports.
cat >"$tmp/peers.py" <<'PY'
import asyncio

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

class Http(asyncio.Protocol):
    BODY = b"hello from asyncio\n"
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(self.BODY), self.BODY))

async def main():
    loop = asyncio.get_running_loop()
    echo = await loop.create_server(Echo, "127.0.0.1", 0)
    udp, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    http = await loop.create_server(Http, "127.0.0.1", 0)
    print(echo.sockets[0].getsockname()[1], udp.get_extra_info("sockname")[1],
          http.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
PY
"$py" "$tmp/peers.py" >"$tmp/ports" 2>"$tmp/peers.err" &
server=$!
for _ in $(seq 100); do
    [ -s "$tmp/ports" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
read -r echo_port udp_port http_port <"$tmp/ports"
if [ -z "${http_port:-}" ]; then
    echo "FAIL: the python3 peers did not start"
    cat "$tmp/peers.err"
    exit 1
fi

# check NAME JSON-FILE EXTRA-PYTHON-CONDITION: requests > 0, errors == 0.
check() {
    if "$py" - "$2" "$3" <<'PY'; then pass "$1"; else bad "$1: $(cat "$2")"; fi
import json, sys

def checks(r):
    for key in ("mode", "connections", "threads", "size", "depth", "duration_s", "requests",
                "requests_per_s", "errors", "bytes_in", "bytes_out", "latency_us"):
        assert key in r, "no key " + key
    lat = r["latency_us"]
    assert all(k in lat for k in ("p50", "p99", "p999", "max")), lat
    assert r["requests"] > 0 and r["errors"] == 0, "requests or errors"
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
    assert eval(sys.argv[2]), sys.argv[2]

try:
    checks(json.load(open(sys.argv[1])))
except Exception as e:
    print("check failed:", repr(e))
    sys.exit(1)
PY
}

run() { # NAME EXTRA-CONDITION ARGS...: run the bench, expect exit 0 and good JSON
    local name=$1 cond=$2
    shift 2
    "$bench" --json "$@" >"$tmp/out.json" 2>"$tmp/err"
    local status=$?
    if [ $status -ne 0 ]; then
        bad "$name: exit status $status: $(cat "$tmp/out.json" "$tmp/err")"
        return
    fi
    check "$name" "$tmp/out.json" "$cond"
}

run "echo for 1 s" 'r["mode"] == "echo" and r["bytes_in"] == r["requests"] * 64' \
    -d 1 -c 4 127.0.0.1 "$echo_port"
run "echo, 2 threads, depth 4" 'r["threads"] == 2 and r["depth"] == 4' \
    -d 300ms -c 4 -t 2 -p 4 --no-pin 127.0.0.1 "$echo_port"
run "udp" 'r["mode"] == "udp" and "lost" in r' \
    --mode udp -d 300ms -c 2 -p 2 127.0.0.1 "$udp_port"
run "http keep-alive, pipelined" 'r["mode"] == "http" and r["non_2xx"] == 0' \
    --mode http -d 300ms -c 2 -p 3 127.0.0.1 "$http_port"

"$bench" --no-such-option 127.0.0.1 "$echo_port" >"$tmp/out" 2>"$tmp/err"
status=$?
if [ $status -eq 2 ] && grep -q -- "no-such-option" "$tmp/err" && grep -q "usage" "$tmp/err"; then
    pass "a bad option exits with 2, naming it"
else
    bad "a bad option: exit status $status, stderr: $(cat "$tmp/err")"
fi

"$bench" -c 0 127.0.0.1 "$echo_port" >"$tmp/out" 2>"$tmp/err"
status=$?
if [ $status -eq 2 ] && grep -q -- "-c" "$tmp/err"; then
    pass "a bad option value exits with 2"
else
    bad "-c 0: exit status $status, stderr: $(cat "$tmp/err")"
fi

exit $fail
