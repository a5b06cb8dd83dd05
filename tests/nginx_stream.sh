#!/bin/bash
# tests/nginx_stream.sh: coreiod behind nginx's stream proxy, the other
# balancer docs/DEPLOYMENT.md shows. nginx (with its stream module) passes
# TCP connections to a coreiod listener with `proxy_protocol on` (nginx sends
# PROXY v1); the whoami service (tests/whoami_module.c) says whom it sees:
#  - through nginx: peer= is the client's own address (its source port too)
#    and real_peer= is nginx's connection;
#  - the echo after the greeting comes back whole;
#  - a direct connection without a header is closed, with a log line.
# Exit 0: pass, 77: skipped (no nginx, no stream module, no compiler), 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
cc=${CC:-cc}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
stream_so=/usr/lib/nginx/modules/ngx_stream_module.so
for need in "$nginx" "$stream_so"; do
    [ -e "$need" ] || {
        echo "SKIP: $need not found (apt-get install nginx libnginx-mod-stream)"
        exit 77
    }
done
for tool in "$cc" pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "SKIP: $tool not found"
        exit 77
    }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/testlib.sh"

build_module whoami_module.c whoami.so

read -r pc pn < <("$py" "$srcdir/tests/coreiod_peer.py" ports 2)
cat >"$tmp/c.ini" <<EOF
[global]
workers = 2
admin = off
drain_timeout = 1s

[module whoami]
path = whoami.so

[listener w]
service = whoami
address = 127.0.0.1:$pc
proxy_protocol = v1
proxy_trusted = 127.0.0.1
EOF
"$bin" -c "$tmp/c.ini" >"$tmp/coreiod.log" 2>&1 &
pids+=($!)
disown
wait_line "$tmp/coreiod.log" "ready" 10 || { bad "coreiod did not start"; show "$tmp/coreiod.log"; exit 1; }

cat >"$tmp/nginx.conf" <<EOF
load_module $stream_so;
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err info;
events { worker_connections 64; }
stream {
    upstream coreio { server 127.0.0.1:$pc; }
    server {
        listen 127.0.0.1:$pn;
        proxy_pass coreio;
        proxy_protocol on;
    }
}
EOF
"$nginx" -e "$tmp/nginx.err" -p "$tmp" -c "$tmp/nginx.conf" >"$tmp/nginx.out" 2>&1 &
pids+=($!)
disown

# The greeting a client through port $1 gets, then "ME=HOST:PORT" (its own address)
# and "ECHO=..." (what came back of the line it sent).
through() {
    "$py" - "$1" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        break
    except ConnectionRefusedError:
        time.sleep(0.05)
f = s.makefile("rb")
print(f.readline().decode().strip())
host, port = s.getsockname()
print("ME=%s:%d" % (host, port))
s.sendall(b"through nginx\n")
print("ECHO=" + f.readline().decode().strip())
EOF
}
out=$(through "$pn")
greeting=$(sed -n 1p <<<"$out")
me=$(sed -n 's/^ME=//p' <<<"$out")
peer=$(sed -n 's/^peer=\([^ ]*\).*/\1/p' <<<"$greeting")
real=$(sed -n 's/.*real_peer=\([^ ]*\).*/\1/p' <<<"$greeting")
[ "$peer" = "$me" ] && pass "through nginx the service sees the client, $me" ||
    { bad "peer= $peer, the client is $me"; echo "    | $greeting"; show "$tmp/nginx.err"; }
grep -q "proxy=v1 " <<<"$greeting" && [ -n "$real" ] && [ "$real" != "$me" ] &&
    pass "from a PROXY v1 header; the socket's own peer is nginx's connection ($real)" ||
    { bad "not a v1 header"; echo "    | $greeting"; }
[ "$(sed -n 's/^ECHO=//p' <<<"$out")" = "through nginx" ] && pass "the echo comes back whole" ||
    bad "echo: $out"

# Straight to coreiod, no header: closed, and logged.
direct=$("$py" - "$pc" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
try:
    print(len(s.recv(100)))
except ConnectionResetError:
    print("reset")
EOF
)
[ "$direct" = 0 ] || [ "$direct" = reset ] && pass "a connection without a header is closed" ||
    bad "a connection without a header got $direct bytes"
wait_line "$tmp/coreiod.log" "closed: no PROXY protocol header|closed: malformed PROXY" 5 &&
    pass "and logged" || { bad "no log line"; show "$tmp/coreiod.log"; }
exit $fail
