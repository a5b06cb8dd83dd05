#!/bin/bash
# tests/coreio_bench.sh: tools/coreio-bench against python3's asyncio as the
# peer. Runs --json for 1 s in echo mode (and briefly in udp and http modes)
# against echo and HTTP/1.1 keep-alive servers on 127.0.0.1, checks that
# requests were made without errors, that a bad option, a bad port and every
# bad numeric value exit with 2 naming it, and that an unknown host fails
# with the resolver's message. Over TLS (python3's ssl, certificates from
# tests/tls_pki.sh): echo and HTTP with keep-alive, a connection per request
# with full and with resumed handshakes, a certificate that does not verify,
# and the TLS and --new-conn options' own usage errors.
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
pki=$tmp/pki
if ! sh "$(dirname "$0")/tls_pki.sh" "$pki" >"$tmp/pki.err" 2>&1; then
    echo "FAIL: tests/tls_pki.sh could not make the test certificates"
    show "$tmp/pki.err"
    exit 1
fi

# The peers: TCP echo, UDP echo, HTTP/1.1 keep-alive, then TLS echo, TLS
# HTTP and TLS 1.2 HTTP; prints their six ports.
cat >"$tmp/peers.py" <<'PY'
import asyncio
import ssl
import sys

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
    # TLS: the same echo and HTTP servers with the test PKI's ECDSA certificate.
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[1] + "/server.pem", sys.argv[1] + "/server.key")
    tls_echo = await loop.create_server(Echo, "127.0.0.1", 0, ssl=tls)
    tls_http = await loop.create_server(Http, "127.0.0.1", 0, ssl=tls)
    tls12 = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.load_cert_chain(sys.argv[1] + "/server.pem", sys.argv[1] + "/server.key")
    tls12_http = await loop.create_server(Http, "127.0.0.1", 0, ssl=tls12)
    print(echo.sockets[0].getsockname()[1], udp.get_extra_info("sockname")[1],
          http.sockets[0].getsockname()[1], tls_echo.sockets[0].getsockname()[1],
          tls_http.sockets[0].getsockname()[1], tls12_http.sockets[0].getsockname()[1],
          flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
PY
"$py" "$tmp/peers.py" "$pki" >"$tmp/ports" 2>"$tmp/peers.err" &
server=$!
for _ in $(seq 100); do
    [ -s "$tmp/ports" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
read -r echo_port udp_port http_port tls_echo_port tls_http_port tls12_port <"$tmp/ports"
if [ -z "${tls12_port:-}" ]; then
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
    assert eval("(" + sys.argv[2] + ")"), sys.argv[2]  # parenthesised: it may span lines

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

# bytes_in counts every byte of the window, so it may hold part of a reply that
# was still in flight at either end of it: at most one per connection and slot.
whole() { # SIZE: bytes_in matches the requests counted, give or take those in flight
    echo "abs(r[\"bytes_in\"] - r[\"requests\"] * $1) < r[\"connections\"] * r[\"depth\"] * $1"
}
run "echo for 1 s" 'r["mode"] == "echo" and '"$(whole 64)" \
    -d 1 -c 4 127.0.0.1 "$echo_port"
run "echo, 2 threads, depth 4" 'r["threads"] == 2 and r["depth"] == 4' \
    -d 300ms -c 4 -t 2 -p 4 --no-pin 127.0.0.1 "$echo_port"
run "udp" 'r["mode"] == "udp" and "lost" in r' \
    --mode udp -d 300ms -c 2 -p 2 127.0.0.1 "$udp_port"
run "http keep-alive, pipelined" 'r["mode"] == "http" and r["non_2xx"] == 0' \
    --mode http -d 300ms -c 2 -p 3 127.0.0.1 "$http_port"
run "echo, a new connection per request" \
    'r["new_conn"] and r["requests"] <= r["connections_made"] <= r["requests"] + 2 and
    "tls" not in r' \
    --new-conn -d 300ms -c 2 127.0.0.1 "$echo_port"

# TLS: the same modes; each handshake verifies the python3 server's certificate.
tls_ok='r["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and r["tls"]["cipher"] != ""'
run "echo over TLS" "$tls_ok and $(whole 64)"' and
    r["connections_made"] == 2 and r["tls"]["resumed"] == 0 and not r["new_conn"]' \
    --tls --tls-ca "$pki/ca.pem" -d 500ms -c 2 127.0.0.1 "$tls_echo_port"
run "echo over TLS, 64 KiB messages, 2 threads" "$tls_ok"' and r["size"] == 65536 and '"$(whole 65536)" \
    --tls --tls-ca "$pki/ca.pem" -s 65536 -t 2 --no-pin -d 500ms -c 2 127.0.0.1 "$tls_echo_port"
run "https keep-alive, pipelined, name from --tls-servername" \
    "$tls_ok"' and r["mode"] == "http" and r["non_2xx"] == 0 and r["connections_made"] == 2' \
    --mode http --tls --tls-ca "$pki/ca.pem" --tls-servername localhost -p 3 -d 500ms -c 2 \
    127.0.0.1 "$tls_http_port"
run "https, a full handshake per request" "$tls_ok"' and r["new_conn"] and
    r["requests"] <= r["connections_made"] <= r["requests"] + 2 and r["tls"]["resumed"] == 0' \
    --mode http --tls --tls-ca "$pki/ca.pem" --new-conn -d 500ms -c 2 127.0.0.1 "$tls_http_port"
# Every handshake but the first on each connection slot resumes a session.
run "https, a resumed handshake per request" "$tls_ok"' and r["new_conn"] and
    r["tls"]["resume"] and r["tls"]["resumed"] > 0 and
    r["tls"]["resumed"] >= r["connections_made"] - 2' \
    --mode http --tls --tls-ca "$pki/ca.pem" --new-conn --tls-resume -d 500ms -c 2 \
    127.0.0.1 "$tls_http_port"
# TLS 1.2 resumes the same session again and again (a server need not send a
# new one); a connection answered before its connect is reported reopens at once.
run "https over TLS 1.2, resumed handshakes" 'r["tls"]["version"] == "TLSv1.2" and
    r["connections_made"] >= 20 and r["tls"]["resumed"] >= r["connections_made"] - 2' \
    --mode http --tls --tls-ca "$pki/ca.pem" --new-conn --tls-resume -d 500ms -c 2 \
    127.0.0.1 "$tls12_port"

# fails_tls NAME WHAT ARGS...: exit status 1, connect errors only, stderr saying WHAT.
fails_tls() {
    local name=$1 what=$2
    shift 2
    "$bench" --json -d 300ms -c 1 --tls "$@" >"$tmp/out.json" 2>"$tmp/err"
    local status=$?
    if [ $status -eq 1 ] && grep -qF -- "$what" "$tmp/err" &&
        "$py" -c 'import json, sys; r = json.load(open(sys.argv[1]))
sys.exit(not (r["requests"] == 0 and r["error_kinds"]["connect"] > 0 and
              r["connections_made"] == 0))' "$tmp/out.json"; then
        pass "$name"
    else
        bad "$name: exit status $status: $(cat "$tmp/out.json" "$tmp/err")"
    fi
}
fails_tls "a certificate for another name fails every handshake" "host name mismatch" \
    --tls-ca "$pki/ca.pem" --tls-servername other.example 127.0.0.1 "$tls_echo_port"
fails_tls "a certificate from another CA fails every handshake" "certificate verify failed" \
    --tls-ca "$pki/other-ca.pem" 127.0.0.1 "$tls_echo_port"

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
# The TLS options go together, in the stream modes; --new-conn takes one request at a time.
usage_error "option --tls: needs --tls-ca FILE" --tls 127.0.0.1 "$tls_echo_port"
usage_error "option --tls-ca: only with --tls" --tls-ca "$pki/ca.pem" 127.0.0.1 "$echo_port"
usage_error "option --tls-servername: only with --tls" --tls-servername localhost 127.0.0.1 \
    "$echo_port"
usage_error "option --tls-resume: only with --tls" --tls-resume --new-conn 127.0.0.1 "$echo_port"
usage_error "option --tls: only with echo, http or line (no DTLS)" --mode udp --tls \
    --tls-ca "$pki/ca.pem" 127.0.0.1 "$udp_port"
usage_error "option --tls-ca: an empty file name" --tls --tls-ca "" 127.0.0.1 "$tls_echo_port"
usage_error "option --tls-servername: an empty name" --tls --tls-ca "$pki/ca.pem" \
    --tls-servername "" 127.0.0.1 "$tls_echo_port"
usage_error "option --tls-ca: '$tmp/no-such.pem': No such file or directory" --tls \
    --tls-ca "$tmp/no-such.pem" 127.0.0.1 "$tls_echo_port"
usage_error "option --tls-ca: '$tmp/ports': cannot read the CA certificates (PEM expected)" \
    --tls --tls-ca "$tmp/ports" 127.0.0.1 "$tls_echo_port"
usage_error "option --new-conn: only with echo, http or line" --mode udp --new-conn 127.0.0.1 \
    "$udp_port"
usage_error "option --new-conn: one request per connection, so no -p above 1" --new-conn -p 2 \
    127.0.0.1 "$echo_port"

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
