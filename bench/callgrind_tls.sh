#!/bin/sh
# bench/callgrind_tls.sh [BUILD]: user-space instructions per 1 KiB echo
# request over TLS 1.3, server side, with bench/echo_coreio under callgrind
# and a python3 ssl client on one connection. Two runs of 500 and 2,500
# requests, each with its handshake, are counted between callgrind_control -z
# and -d; the difference over 2,000 requests leaves the handshake out.
# Needs valgrind, openssl and /usr/bin/python3; prints one line.
set -eu
b=${1:-.}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
srv_pid=
trap '[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
sh "$top/tests/tls_pki.sh" "$tmp/pki" >/dev/null 2>&1
port=$((20000 + $$ % 20000))

cat >"$tmp/client.py" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as raw:
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    msg = b"x" * 1024
    for _ in range(int(sys.argv[3])):
        s.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(s.recv(65536))
    s.unwrap()
EOF

# The binary itself, not libtool's wrapper script, so that callgrind sees the server.
LD_LIBRARY_PATH="$b/.libs" TMPDIR=$tmp valgrind --tool=callgrind \
    --callgrind-out-file="$tmp/cg.out" "$b/bench/.libs/echo_coreio" "$port" \
    "$tmp/pki/server.pem" "$tmp/pki/server.key" >"$tmp/server.log" 2>&1 &
srv_pid=$!
client() {
    /usr/bin/python3 "$tmp/client.py" "$tmp/pki/ca.pem" "$port" "$1"
}
i=0
until client 10 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "callgrind_tls.sh: the server did not start" >&2; exit 1; }
    sleep 0.2
done

# Instructions of one run of $1 requests (with its handshake).
count() {
    TMPDIR=$tmp callgrind_control -z "$srv_pid" >/dev/null 2>&1
    client "$1"
    TMPDIR=$tmp callgrind_control -d "$srv_pid" >/dev/null 2>&1
    f=$(ls -t "$tmp"/cg.out.* | head -1)
    until grep -q '^totals:' "$f" 2>/dev/null; do sleep 0.1; done
    sed -n 's/^summary: *//p' "$f"
}
a=$(count 500)
c=$(count 2500)
echo "coreio TLS 1.3 echo, 1 KiB: $(((c - a) / 2000)) instructions per request (server, user space)"
