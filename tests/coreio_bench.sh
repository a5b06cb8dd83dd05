#!/bin/bash
# tests/coreio_bench.sh: tools/coreio-bench against python3's asyncio as the
# peer. Runs --json for 1 s in echo mode (and briefly in udp and http modes)
# against echo and HTTP/1.1 keep-alive servers on 127.0.0.1, checks that
# requests were made without errors, that a bad option, a bad port and every
# bad numeric value exit with 2 naming it, and that an unknown host fails
# with the resolver's message.
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

. "$(dirname "$0")/testlib.sh"

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

# usage_error WHAT ARGS...: exit status 2 before any run, stderr saying WHAT (fixed text).
usage_error() {
    local what=$1
    shift
    "$bench" "$@" >"$tmp/out" 2>"$tmp/err"
    local status=$?
    if [ $status -eq 2 ] && grep -qF -- "$what" "$tmp/err" && grep -q "usage" "$tmp/err" &&
        [ ! -s "$tmp/out" ]; then
        pass "$* exits with 2: $what"
    else
        bad "$*: exit status $status, stderr: $(cat "$tmp/err")"
    fi
}

# Ports: 1 to 65535, or a service name (never port 0, never wrapped around).
usage_error "PORT: '65536' is not a port number" 127.0.0.1 65536
usage_error "PORT: '0' is not a port number" 127.0.0.1 0
usage_error "PORT: '4294967376' is not a port number" 127.0.0.1 4294967376
usage_error "PORT: '+80' is neither" 127.0.0.1 +80
usage_error "PORT: 'no-such-service' is neither a port number from 1 to 65535 nor a tcp service" \
    127.0.0.1 no-such-service
usage_error "PORT: '' is not a port number" 127.0.0.1 ""
usage_error "HOST: an empty name" "" "$echo_port"
# Every numeric option, each bound, and what is not a plain number.
usage_error "option -c: '0' is not a whole number from 1 to 1000000" -c 0 127.0.0.1 "$echo_port"
usage_error "option -c: '1.5'" -c 1.5 127.0.0.1 "$echo_port"
usage_error "option -c: '-1'" -c -1 127.0.0.1 "$echo_port"
usage_error "option -c: ' 4'" -c " 4" 127.0.0.1 "$echo_port"
usage_error "option -c: '18446744073709551617'" -c 18446744073709551617 127.0.0.1 "$echo_port"
usage_error "option -s: '0'" -s 0 127.0.0.1 "$echo_port"
usage_error "option -s: '67108865'" -s 67108865 127.0.0.1 "$echo_port"
usage_error "option -s: udp datagrams take 8 to 65507 bytes" --mode udp -s 7 127.0.0.1 "$udp_port"
usage_error "option -p: '65537' is not a whole number from 1 to 65536" -p 65537 127.0.0.1 "$echo_port"
usage_error "option -t: '0'" -t 0 127.0.0.1 "$echo_port"
usage_error "option -t: '1025'" -t 1025 127.0.0.1 "$echo_port"
usage_error "option -d: '0' is not a time from 1us to 24 hours" -d 0 127.0.0.1 "$echo_port"
usage_error "option -d: '86401'" -d 86401 127.0.0.1 "$echo_port"
usage_error "option -d: '1e3'" -d 1e3 127.0.0.1 "$echo_port"
usage_error "option -d: 'inf'" -d inf 127.0.0.1 "$echo_port"
usage_error "option -d: '0.5us'" -d 0.5us 127.0.0.1 "$echo_port"
usage_error "option -d: '2h'" -d 2h 127.0.0.1 "$echo_port"
usage_error "option --warmup: '-1' is not a time from 0 to 24 hours" --warmup -1 127.0.0.1 \
    "$echo_port"

# A service name is a port: the run starts (port 7, echo, refuses or echoes on loopback).
"$bench" --json -d 1ms -c 1 127.0.0.1 echo >"$tmp/out" 2>"$tmp/err"
status=$?
if [ $status -ne 2 ] && ! grep -q "PORT" "$tmp/err"; then
    pass "a service name is taken as the port"
else
    bad "127.0.0.1 echo: exit status $status, stderr: $(cat "$tmp/err")"
fi

# An unknown host (RFC 6761 .invalid) ends the run before it starts, with the
# resolver's own message (or its "try again" where no name server answers).
"$bench" -c 1 nonexistent.invalid "$echo_port" >"$tmp/out" 2>"$tmp/err"
status=$?
resolver_said="cannot resolve nonexistent.invalid port $echo_port: "
if [ $status -eq 1 ] && [ ! -s "$tmp/out" ] &&
    grep -qE "$resolver_said(Name or service not known|Temporary failure in name resolution)$" \
        "$tmp/err"; then
    pass "an unknown host fails at once with the resolver's message"
else
    bad "nonexistent.invalid: exit status $status, stderr: $(cat "$tmp/err")"
fi

exit $fail
