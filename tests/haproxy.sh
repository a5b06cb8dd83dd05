#!/bin/bash
# tests/haproxy.sh: coreiod behind a real HAProxy (2.6 or later) on loopback.
# Two coreiod instances, A and B, serve the whoami service of
# tests/whoami_module.c (a line saying who the peer is, then echo) on
# listeners reading PROXY headers; HAProxy ("mode tcp", source address
# 127.0.0.2, so that its connections are told from the clients') sends v2 to
# A and B (roundrobin), v1 to A on another frontend, and v2 with TLVs from a
# TLS frontend. Its health checks send a header (check-send-proxy): v2 checks
# a LOCAL one and expect whoami's "proxy=v2 local=1"; v1, which has no LOCAL,
# the check connection's own addresses ("proxy=v1 local=0"); one more server
# line has HAProxy's default connect-only checks (a header, then a reset at
# once), as has the TLS frontend's. Its agent checks read the
# [global] agent listener of each. Checks:
#  - coreiod -t accepts the configurations;
#  - the checks pass (LOCAL headers are served) and leave no warning in the
#    logs, and no check ever fails during the whole script;
#  - through HAProxy, peer= is the client's own address (its getsockname),
#    sock= the frontend's, real_peer= HAProxy's (127.0.0.2), for v2 and v1;
#    through the TLS frontend, authority= is the SNI, alpn= the ALPN and
#    unique_id= the unique-id-format's value (the client's address);
#  - a direct connection without a header, from a trusted address, is closed
#    without a byte and logged with its address; one from an address not
#    trusted is closed at accept and logged; a listener without
#    proxy_protocol sees the client itself;
#  - the agent listener answers "up ready N%"; POST /drain on A's admin port:
#    /health is 503, the agent answers "drain", HAProxy shows A in DRAIN,
#    every new connection goes to B, and a connection open on A goes on
#    working; POST /undrain: /health 200, A back UP and taking connections;
#  - SIGTERM: each coreiod exits 0.
# Exit 0: pass, 77: skipped (no haproxy, compiler or pkg-config), 1: fail.
set -euo pipefail
. "$(dirname "$0")/testlib.sh"
. "$(dirname "$0")/haproxy_lib.sh"

# Ports: of each instance (v2, v1, any, untrusted, plain, admin, agent), then the frontends.
read -r -a all < <(free_ports 18) # in one go: distinct
pa=("${all[@]:0:7}")
pb=("${all[@]:7:7}")
f2=${all[14]} f1=${all[15]} ftls=${all[16]} fl4=${all[17]}

# instance_conf NAME PORTS...: the configuration of one instance, in $tmp/NAME.ini.
instance_conf() {
    local name=$1
    shift
    cat >"$tmp/$name.ini" <<EOF
[global]
workers = 1
admin = 127.0.0.1:$6
agent = 127.0.0.1:$7
drain_timeout = 2s
idle_poll = 0

[module whoami]
path = whoami.so

; HAProxy only (its "source").
[listener v2]
service = whoami
address = 127.0.0.1:$1
proxy_protocol = v2
proxy_trusted = 127.0.0.2/32, ::1

[listener v1]
service = whoami
address = 127.0.0.1:$2
proxy_protocol = v1
proxy_trusted = 127.0.0.0/8

[listener any]
service = whoami
address = 127.0.0.1:$3
proxy_protocol = any
proxy_trusted = 127.0.0.0/8 ::1

; Nobody here: a header from anyone is refused.
[listener untrusted]
service = whoami
address = 127.0.0.1:$4
proxy_protocol = v2
proxy_trusted = 192.0.2.0/24

[listener plain]
service = whoami
address = 127.0.0.1:$5
EOF
}
instance_conf A "${pa[@]}"
instance_conf B "${pb[@]}"
for x in A B; do
    if (cd / && "$bin" -t -c "$tmp/$x.ini") >"$tmp/t.log" 2>&1; then
        pass "coreiod -t accepts $x.ini (PROXY listeners, agent)"
    else
        bad "coreiod -t $x.ini:"
        show "$tmp/t.log"
        exit 1
    fi
done

# The TLS frontend's certificate (HAProxy wants the key in the same file).
tls=no
if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=whoami.test -keyout "$tmp/lb.key" -out "$tmp/lb.crt" >"$tmp/openssl.log" 2>&1; then
    cat "$tmp/lb.crt" "$tmp/lb.key" >"$tmp/lb.pem"
    tls=yes
else
    echo "NOTE: no openssl command, the TLS frontend is left out"
fi

check="weight 100 check check-send-proxy inter 200ms fall 2 rise 1"
agent="agent-check agent-inter 200ms"
{
    cat <<EOF
global
    stats socket $tmp/haproxy.sock level admin
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s
    default-server source 127.0.0.2

listen v2
    bind 127.0.0.1:$f2
    balance roundrobin
    option tcp-check
    tcp-check expect string proxy=v2\\ local=1
    server A 127.0.0.1:${pa[0]} send-proxy-v2 $check $agent agent-port ${pa[6]}
    server B 127.0.0.1:${pb[0]} send-proxy-v2 $check $agent agent-port ${pb[6]}

listen v1
    bind 127.0.0.1:$f1
    option tcp-check
    tcp-check expect string proxy=v1\\ local=0
    server A 127.0.0.1:${pa[1]} send-proxy $check

# HAProxy's default check: connect (and send the LOCAL header), then reset at once.
listen l4
    bind 127.0.0.1:$fl4
    server A 127.0.0.1:${pa[0]} send-proxy-v2 $check
EOF
    [ $tls = no ] || cat <<EOF

listen tls
    bind 127.0.0.1:$ftls ssl crt $tmp/lb.pem alpn h2,http/1.1
    unique-id-format %ci:%cp
    server A 127.0.0.1:${pa[2]} send-proxy-v2 proxy-v2-options authority,unique-id,crc32c,ssl $check
EOF
} >"$tmp/haproxy.cfg"

start_coreiod A "$tmp/A.ini"
apid=$pid
start_coreiod B "$tmp/B.ini"
bpid=$pid
start_haproxy "$tmp/haproxy.cfg"

# ---- health checks with LOCAL headers -------------------------------------------------
# server/proxy and the status of its passing check: L7OK when it reads whoami's line.
servers="v2/A:L7OK v2/B:L7OK v1/A:L7OK l4/A:L4OK"
[ $tls = no ] || servers="$servers tls/A:L4OK"
for s in $servers; do
    px=${s%%/*} sv=${s#*/} sv=${sv%:*} ok=${s#*:}
    if wait_until 20 checked_up "$px" "$sv" "$ok"; then
        pass "HAProxy's check of $px/$sv passes: UP, $ok"
    else
        bad "$px/$sv is $(hstatus "$px" "$sv" || true), $(hstatus "$px" "$sv" check_status || true); haproxy's log:"
        show "$tmp/haproxy.log"
    fi
done
sleep 1 # some more checks: each a header, then a reset once HAProxy has seen enough
for x in A B; do
    c=$(log_complaints "$tmp/$x.log")
    [ -z "$c" ] && pass "$x: HAProxy's checks (v2 LOCAL, v1, connect-only) leave no warning in the log" ||
        bad "$x: HAProxy's checks left in the log: $c"
done

# ---- who the service sees through HAProxy ----------------------------------------------
# through NAME PORT VERSION [--tls SNI ALPN]: one client through a frontend; sets $line.
through() {
    local name=$1 port=$2 version=$3 out client
    shift 3
    if ! out=$("${peer[@]}" whoami 127.0.0.1 "$port" "$@" 2>&1); then
        bad "$name: $out"
        line=
        return
    fi
    client=$(sed -n 's/^client=//p' <<<"$out")
    line=$(sed -n '/^peer=/p' <<<"$out")
    local p s r v l
    p=$(field peer "$line") s=$(field sock "$line") r=$(field real_peer "$line")
    v=$(field proxy "$line") l=$(field local "$line")
    if [ "$p" = "$client" ] && [ "$s" = "127.0.0.1:$port" ] && [ "${r%:*}" = 127.0.0.2 ] &&
        [ "$v" = "$version" ] && [ "$l" = 0 ]; then
        pass "$name: peer=$p (the client), sock=$s, real_peer=$r (HAProxy), proxy=$v"
    else
        bad "$name: client $client, whoami: $line"
    fi
}
through "v2 frontend" "$f2" v2
through "v1 frontend" "$f1" v1
if [ "$(field real_sock "$line")" = "127.0.0.1:${pa[1]}" ]; then
    pass "v1 frontend: served by A's v1 listener"
else
    bad "v1 frontend: real_sock is not A's v1 listener: $line"
fi
if [ $tls = yes ]; then
    through "TLS frontend" "$ftls" v2 --tls whoami.test http/1.1
    want=$(printf '%s' "$(field peer "$line")" | od -An -tx1 | tr -d ' \n')
    a=$(field authority "$line") n=$(field alpn "$line") u=$(field unique_id "$line")
    if [ "$a" = whoami.test ] && [ "$n" = http/1.1 ] && [ "$u" = "$want" ]; then
        pass "TLS frontend: TLVs authority=$a alpn=$n unique_id=$u (hex of the client's address)"
    else
        bad "TLS frontend: expected authority=whoami.test alpn=http/1.1 unique_id=$want: $line"
    fi
fi

# ---- direct connections ----------------------------------------------------------------
# refused NAME PORT DATA LOGTEXT: a direct connection to A sending DATA is closed without a
# byte, and A logs "connection from <the client> closed: LOGTEXT".
refused() {
    local out client
    if ! out=$("${peer[@]}" closed 127.0.0.1 "$2" "$3" 2>&1); then
        bad "$1: $out"
        return
    fi
    client=$(sed -n 's/^client=//p' <<<"$out")
    if wait_until 10 grep -qF "connection from $client closed: $4" "$tmp/A.log"; then
        pass "$1: $(tail -1 <<<"$out") without a byte; logged: $(grep -F "$client" "$tmp/A.log")"
    else
        bad "$1: $(tail -1 <<<"$out"), but no 'connection from $client closed: $4' in A's log:"
        show "$tmp/A.log"
    fi
}
refused "direct, no header, trusted peer (v1 listener)" "${pa[1]}" 'hello\r\n' \
    "no PROXY protocol header"
refused "direct, no header, trusted peer (any listener)" "${pa[2]}" 'GET / HTTP/1.0\r\n\r\n' \
    "no PROXY protocol header"
refused "direct v1 header to the v2 listener, peer not trusted" "${pa[0]}" \
    'PROXY TCP4 192.0.2.1 127.0.0.1 1234 80\r\n' "PROXY protocol peer not trusted"
refused "direct to a listener that trusts nobody" "${pa[3]}" '' "PROXY protocol peer not trusted"
out=$("${peer[@]}" whoami 127.0.0.1 "${pa[4]}" 2>&1) || true
line=$(sed -n '/^peer=/p' <<<"$out")
client=$(sed -n 's/^client=//p' <<<"$out")
if [ -n "$line" ] && [ "$(field peer "$line")" = "$client" ] &&
    [ "$(field real_peer "$line")" = "$client" ] && [ "$(field proxy "$line")" = none ]; then
    pass "listener without proxy_protocol: peer=real_peer=$client, proxy=none"
else
    bad "listener without proxy_protocol: $out"
fi

# ---- drain and undrain through the admin port and the agent ----------------------------
admin() { "${peer[@]}" http 127.0.0.1 "${pa[5]}" "$@"; }
agent_says() { [ "$("${peer[@]}" agent 127.0.0.1 "${pa[6]}")" = "$1" ]; }
agent_ready() { "${peer[@]}" agent 127.0.0.1 "${pa[6]}" | grep -qE '^up ready [0-9]+%$'; }
# Which instance served through the v2 frontend: A or B, from whoami's real_sock.
served_by() {
    local l
    l=$("${peer[@]}" whoami 127.0.0.1 "$f2" | sed -n '/^peer=/p')
    case $(field real_sock "$l") in
    "127.0.0.1:${pa[0]}") echo A ;;
    "127.0.0.1:${pb[0]}") echo B ;;
    *) echo "? $l" ;;
    esac
}
tally() {
    local i
    for i in $(seq "$1"); do served_by; done | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }'
}

r=$(admin GET /health)
[ "${r%% *}" = 200 ] && pass "A /health: $r" || bad "A /health before the drain: $r"
a=$("${peer[@]}" agent 127.0.0.1 "${pa[6]}")
agent_ready && pass "A's agent answers '$a'" || bad "A's agent answers '$a'"

# A connection held on A across the drain: roundrobin puts one of two on A.
held=
holds=()
for i in 1 2 3 4; do
    "${peer[@]}" hold 127.0.0.1 "$f2" "$tmp/hold$i.line" "$tmp/hold.stop" >"$tmp/hold$i.out" 2>&1 &
    holds+=($!)
    pids+=($!)
    wait_until 10 test -s "$tmp/hold$i.line" || break
    if [ "$(field real_sock "$(cat "$tmp/hold$i.line")")" = "127.0.0.1:${pa[0]}" ]; then
        held=$i
        break
    fi
done
[ -n "$held" ] && pass "a connection held on A ($(cut -d' ' -f1 "$tmp/hold$held.line"))" ||
    bad "no connection through the v2 frontend landed on A"

r=$(admin POST /drain)
[ "${r%% *}" = 200 ] && pass "A POST /drain: $r" || bad "A POST /drain: $r"
r=$(admin GET /health)
[ "${r%% *}" = 503 ] && pass "A /health while draining: $r" || bad "A /health while draining: $r"
agent_says drain && pass "A's agent answers 'drain'" ||
    bad "A's agent answers '$("${peer[@]}" agent 127.0.0.1 "${pa[6]}")' while draining"
if wait_until 10 has_status v2 A DRAIN; then
    pass "HAProxy shows v2/A as '$(hstatus v2 A)'"
else
    bad "v2/A is '$(hstatus v2 A)', not DRAIN, 10 s after the drain"
fi
has_status v2 B UP || bad "v2/B is '$(hstatus v2 B)'"
t=$(tally 10)
[ "$t" = "B=10 " ] && pass "while A drains, 10 new connections: $t" || bad "while A drains: $t"
if [ -n "$held" ]; then
    sleep 0.5 # a few more exchanges on the held connection
    if alive "${holds[held - 1]}"; then
        pass "the connection held on A goes on through the drain"
    else
        bad "the connection held on A ended: $(cat "$tmp/hold$held.out")"
    fi
fi

r=$(admin POST /undrain)
[ "${r%% *}" = 200 ] && pass "A POST /undrain: $r" || bad "A POST /undrain: $r"
r=$(admin GET /health)
[ "${r%% *}" = 200 ] && pass "A /health after undrain: $r" || bad "A /health after undrain: $r"
wait_until 5 agent_ready && pass "A's agent answers 'up ready N%' again" ||
    bad "A's agent answers '$("${peer[@]}" agent 127.0.0.1 "${pa[6]}")' after undrain"
if wait_until 10 has_status v2 A UP; then
    pass "HAProxy shows v2/A UP again"
else
    bad "v2/A is '$(hstatus v2 A)', not UP, 10 s after the undrain"
fi
# The agent's weight (10% to 100% of 100, from the loop lag) may favour B: up to 40 tries.
n=0
while [ $n -lt 40 ] && [ "$(served_by)" != A ]; do n=$((n + 1)); done
[ $n -lt 40 ] && pass "after the undrain, A takes new connections again (after $n on B)" ||
    bad "after the undrain, 40 new connections all went to B"

touch "$tmp/hold.stop"
for i in "${!holds[@]}"; do
    status=0
    wait "${holds[i]}" || status=$?
    if [ $status -ne 0 ]; then
        bad "held connection $((i + 1)) ($(cut -d' ' -f1 "$tmp/hold$((i + 1)).line")): $(cat "$tmp/hold$((i + 1)).out")"
    elif [ "$((i + 1))" = "$held" ]; then
        pass "the connection held on A through drain and undrain: $(cat "$tmp/hold$held.out"), no failure"
    fi
done

for s in $servers; do
    px=${s%%/*} sv=${s#*/} sv=${sv%:*}
    checks_never_failed "$px" "$sv" && pass "no check of $px/$sv ever failed" ||
        bad "$px/$sv: $(hstatus "$px" "$sv" chkfail) failed checks, $(hstatus "$px" "$sv" chkdown) times DOWN"
done

# ---- stop ------------------------------------------------------------------------------
kill -TERM "$hpid"
wait "$hpid" 2>/dev/null || true
for x in A B; do
    p=$apid
    [ $x = B ] && p=$bpid
    kill -TERM "$p"
    status=0
    wait "$p" || status=$?
    [ $status -eq 0 ] && pass "$x: SIGTERM, exit 0" || { bad "$x: exit $status"; show "$tmp/$x.log"; }
    c=$(log_complaints "$tmp/$x.log" 'connection from 127\.0\.0\.1:[0-9]+ closed: ')
    [ -z "$c" ] || bad "$x: unexpected warnings: $c"
done
exit $fail
