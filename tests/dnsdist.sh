#!/bin/bash
# tests/dnsdist.sh: coreiod behind dnsdist, which passes DNS queries over UDP
# to a backend with a PROXY v2 header in each datagram (useProxyProtocol).
# dig asks through dnsdist; the dns-whoami service
# (tests/dns_whoami_module.c) answers with a TXT record naming the client
# the header carried and the sender the answer goes back to:
#  - through dnsdist: client= is dig's own address and port (bound with -b,
#    from 127.0.0.2, and from ::1 for a UDP6 header), via= is dnsdist;
#    dnsdist's health checks pass (a header each too), and 20 queries in a
#    row are all answered, from several of its sockets=8 source ports;
#  - straight to the PROXY listener, without a header: no answer, a log line;
#  - a listener without PROXY: client=none;
#  - a reload that no longer trusts dnsdist drops its queries (logged), and
#    the reload back serves them again once dnsdist's check sees it up.
# Exit 0: pass, 77: skipped (no dnsdist, dig or compiler), 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
cc=${CC:-cc}
for tool in dnsdist dig "$cc" pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "SKIP: $tool not found (apt-get install dnsdist bind9-dnsutils)"
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

build_module dns_whoami_module.c dns_whoami.so

read -r pd pp pn pc < <("$py" "$srcdir/tests/coreiod_peer.py" ports 4)
config() { # $1: the ranges the PROXY listener trusts
    cat <<EOF
[global]
workers = 2
admin = off
drain_timeout = 1s

[module dns_whoami]
path = dns_whoami.so

[listener dns]
service = dns-whoami
protocol = udp
address = 127.0.0.1:$pd
proxy_protocol = v2
proxy_trusted = $1

[listener plain]
service = dns-whoami
protocol = udp
address = 127.0.0.1:$pp
EOF
}
config 127.0.0.1 >"$tmp/c.ini"
"$bin" -c "$tmp/c.ini" >"$tmp/coreiod.log" 2>&1 &
coreiod=$!
pids+=($coreiod)
disown
wait_line "$tmp/coreiod.log" "ready" 10 || { bad "coreiod did not start"; show "$tmp/coreiod.log"; exit 1; }

have_ip6=$("$py" -c 'import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0)); print(1)' 2>/dev/null || echo 0)
{
    echo "setLocal('127.0.0.1:$pn')"
    [ "$have_ip6" = 1 ] && echo "addLocal('[::1]:$pn')"
    echo "newServer({address='127.0.0.1:$pd', useProxyProtocol=true, sockets=8})"
    echo "setSecurityPollSuffix('')" # no polling of powerdns.com
} >"$tmp/dnsdist.conf"
dnsdist --supervised --disable-syslog -C "$tmp/dnsdist.conf" >"$tmp/dnsdist.log" 2>&1 &
pids+=($!)
disown

# The TXT answer to a query to port $1 at server $2, from source $3 (ADDRESS#PORT);
# nothing when none came (dig's ";;" lines say why).
ask() {
    dig @"$2" -p "$1" -b "$3" whoami.test TXT +short +tries=1 +time=2 2>/dev/null |
        grep -v '^;' | tr -d '"' || true
}
# Ask through dnsdist until it answers (its health check must see coreiod up first).
ask_until() {
    local a=""
    for _ in $(seq "$1"); do
        a=$(ask "$pn" 127.0.0.1 "127.0.0.2#$pc") && [ -n "$a" ] && break
        sleep 0.2
    done
    echo "$a"
}

a=$(ask_until 50)
case $a in
client=127.0.0.2:$pc\ via=127.0.0.1:*)
    pass "through dnsdist the service sees dig's address and port, 127.0.0.2:$pc ($a)" ;;
*) bad "through dnsdist: '$a'"; show "$tmp/dnsdist.log"; show "$tmp/coreiod.log" ;;
esac
grep -q "as 'up'" "$tmp/dnsdist.log" && pass "dnsdist's health checks (with a header) pass" ||
    { bad "dnsdist never saw coreiod up"; show "$tmp/dnsdist.log"; }
if [ "$have_ip6" = 1 ]; then
    a=$(ask "$pn" ::1 "::1#$pc")
    case $a in
    client=\[::1\]:$pc\ via=127.0.0.1:*) pass "from ::1 a UDP6 header names [::1]:$pc" ;;
    *) bad "from ::1: '$a'" ;;
    esac
fi
for k in $(seq 20); do
    ask "$pn" 127.0.0.1 127.0.0.2 | sed -n 's/.* via=//p'
done >"$tmp/via"
n=$(wc -l <"$tmp/via")
ports=$(sort -u "$tmp/via" | wc -l)
[ "$n" = 20 ] && [ "$ports" -gt 1 ] &&
    pass "20 queries in a row, 20 answers, from $ports of dnsdist's 8 source ports" ||
    bad "$n answers of 20, from $ports source ports"

# Straight to the PROXY listener, no header: dropped, and logged.
a=$(ask "$pd" 127.0.0.1 "127.0.0.1#$pc")
[ -z "$a" ] && wait_line "$tmp/coreiod.log" "datagram from 127.0.0.1:$pc dropped: no PROXY" 5 &&
    pass "a query without a header is dropped, with a log line" ||
    { bad "direct query: '$a'"; show "$tmp/coreiod.log"; }
a=$(ask "$pp" 127.0.0.1 "127.0.0.1#$pc")
[ "$a" = "client=none via=127.0.0.1:$pc" ] && pass "a listener without PROXY: $a" ||
    bad "plain listener: '$a'"

# A reload that trusts dnsdist no more, then again.
config 10.0.0.0/8 >"$tmp/c.ini"
kill -HUP "$coreiod"
wait_line "$tmp/coreiod.log" "reloaded" 10 || bad "no reload"
a=$(ask "$pn" 127.0.0.1 127.0.0.2)
[ -z "$a" ] && wait_line "$tmp/coreiod.log" "datagram from 127.0.0.1:[0-9]+ dropped: PROXY protocol peer not trusted" 5 &&
    pass "reloaded to trust 10.0.0.0/8 only: dnsdist's queries are dropped" ||
    { bad "after the reload: '$a'"; show "$tmp/coreiod.log"; }
config 127.0.0.1 >"$tmp/c.ini"
kill -HUP "$coreiod"
a=$(ask_until 50)
case $a in
client=127.0.0.2:$pc\ via=*) pass "reloaded back: served again ($a)" ;;
*) bad "after the reload back: '$a'"; show "$tmp/coreiod.log" ;;
esac

kill -TERM "$coreiod"
for _ in $(seq 100); do kill -0 "$coreiod" 2>/dev/null || break; sleep 0.05; done
kill -0 "$coreiod" 2>/dev/null && bad "coreiod does not stop" || pass "SIGTERM: coreiod stops"
exit $fail
