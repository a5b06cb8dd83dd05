#!/bin/sh
# tests/tls_interop.sh: the TLS examples against TLS stacks nobody here wrote,
# both ways, on 127.0.0.1:
#  1. openssl s_client, gnutls-cli and python3's ssl against
#     examples/tls_echo_server, TLS 1.2 and 1.3 each: random data comes back
#     intact (sha256) and the close is clean on the peer's side: python's
#     unwrap gets the server's close_notify; s_client and gnutls-cli see the
#     server's close_notify when it stops on SIGTERM/SIGINT (a truncation is
#     "unexpected eof" / "terminated the connection abnormally" there).
#  2. examples/tls_echo_client against openssl s_server (its stdout looped
#     back to its stdin through a fifo makes it an echo server), gnutls-serv
#     --echo and a python3 ssl echo server, TLS 1.2 and 1.3: the message comes
#     back and each server logs the client's close_notify.
#  3. examples/starttls server with a python3 client whose ClientHello comes
#     in the same segment as "STARTTLS\r\n" (initial_data), one byte per
#     segment, and with clear text after STARTTLS (refused, never echoed);
#     then examples/starttls client against it.
#  4. Refusals: TLS 1.1 from s_client (which, as a control, gets TLS 1.1
#     from s_server) and a client-initiated renegotiation; the server goes on
#     serving others.
# A case whose tool is missing is skipped with a SKIP line; without python3
# the script is skipped (77). Peers in tests/tls_peer.py.
set -u
b=${top_builddir:-.}
here=$(dirname "$0")
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || {
    echo "SKIP: python3 not found"
    exit 77
}
. "$here/testlib.sh"
peer=$here/tls_peer.py
pids=""
tmp=$(mktemp -d)
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

have() { command -v "$1" >/dev/null 2>&1; }
skip() { echo "SKIP: $*"; }
check() { # $1: what; rest: a command that must succeed
    what=$1
    shift
    if "$@"; then pass "$what"; else bad "$what"; fi
}
free_port() {
    "$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}
wait_line() { # $1: file, $2: text; up to 10 s
    i=0
    while [ $i -lt 100 ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
wait_listen() { # $1: port; up to 10 s (s_server -quiet says nothing when ready)
    i=0
    while [ $i -lt 100 ]; do
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
wait_size() { # $1: file, $2: bytes; up to 30 s
    i=0
    while [ $i -lt 300 ]; do
        [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }

sh "$here/tls_pki.sh" "$tmp/pki" >"$tmp/pki.log" 2>&1 || {
    bad "tls_pki.sh failed"
    show "$tmp/pki.log"
    exit 1
}
pki=$tmp/pki
big=10485760
head -c $big /dev/urandom >"$tmp/data"
# gnutls-cli writes what it receives one byte per write(2): 10 MB would take
# it 15 s, so it echoes 2 MB (still many records, both ways at once).
gbig=2097152
head -c $gbig "$tmp/data" >"$tmp/gdata"

# ---- tls_echo_server: start, and stop with a signal ------------------------------

start_server() { # $1: log name; sets $port and $server
    port=$(free_port)
    "$b/examples/tls_echo_server" --cert "$pki/server.pem" --key "$pki/server.key" \
        --port "$port" >"$tmp/$1.log" 2>&1 &
    server=$!
    pids="$pids $server"
    wait_line "$tmp/$1.log" "Serving TLS on" || bad "$1: tls_echo_server did not start"
}

stop_server() { # $1: log name, $2: signal; the server must exit 0 after "Stopped"
    kill -"$2" "$server" 2>/dev/null
    wait "$server"
    st=$?
    if [ $st -eq 0 ] && grep -q '^Stopped' "$tmp/$1.log"; then
        pass "$1: tls_echo_server stopped cleanly on SIG$2"
    else
        bad "$1: tls_echo_server exit $st on SIG$2"
        show "$tmp/$1.log"
    fi
}

# What the server saw of a client that sent $3 bytes over TLS $2.
server_saw() { # $1: log name, $2: version, $3: bytes
    if grep -q "over TLSv$2" "$tmp/$1.log" &&
        grep -q "Closed .* cleanly after echoing $3 bytes" "$tmp/$1.log"; then
        pass "$1: the server saw TLS $2 and a clean end after $3 bytes"
    else
        bad "$1: server log"
        show "$tmp/$1.log"
    fi
}

echo_check() { # $1: name, $2: output file, $3: input file
    if [ "$(sha "$2")" = "$(sha "$3")" ]; then
        pass "$1: $(wc -c <"$3") bytes echoed intact (sha256)"
    else
        bad "$1: echo differs: $(wc -c <"$2") of $(wc -c <"$3") bytes, sha256 $(sha "$2")"
    fi
}

# ---- 1. real clients against tls_echo_server --------------------------------------

# The server closes first (its signal): s_client must see close_notify, not EOF.
s_client_echo() { # $1: version, $2: signal
    name=s_client_$1
    start_server $name
    timeout 60 openssl s_client -quiet -tls1_${1#1.} -CAfile "$pki/ca.pem" -verify_return_error \
        -verify_hostname localhost -connect "127.0.0.1:$port" <"$tmp/data" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    client=$!
    wait_size "$tmp/$name.out" $big
    stop_server $name "$2"
    wait $client
    st=$?
    echo_check "$name" "$tmp/$name.out" "$tmp/data"
    if [ $st -eq 0 ] && ! grep -qi "unexpected eof\|error" "$tmp/$name.err"; then
        pass "$name: the server's close_notify ended s_client cleanly"
    else
        bad "$name: s_client exit $st"
        show "$tmp/$name.err"
    fi
    server_saw $name "$1" $big
}

# gnutls-cli closes when its stdin ends: a fifo holds it open until the echo is in.
gnutls_cli_echo() { # $1: version, $2: signal
    name=gnutls_cli_$1
    start_server $name
    mkfifo "$tmp/$name.in"
    timeout 60 gnutls-cli --logfile "$tmp/$name.info" --x509cafile "$pki/ca.pem" \
        --priority "NORMAL:-VERS-ALL:+VERS-TLS$1" -p "$port" 127.0.0.1 <"$tmp/$name.in" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    client=$!
    exec 3>"$tmp/$name.in"
    cat "$tmp/gdata" >&3 &
    feeder=$!
    wait_size "$tmp/$name.out" $gbig
    stop_server $name "$2"
    wait $client
    st=$?
    exec 3>&-
    wait $feeder
    echo_check "$name" "$tmp/$name.out" "$tmp/gdata"
    if [ $st -eq 0 ] && ! grep -q "terminated the connection abnormally" "$tmp/$name.err" &&
        grep -q "Peer has closed the GnuTLS connection" "$tmp/$name.info"; then
        pass "$name: gnutls-cli saw the server's close_notify"
    else
        bad "$name: gnutls-cli exit $st"
        show "$tmp/$name.err"
    fi
    server_saw $name "$1" $gbig
}

# python closes first: unwrap() needs the server's close_notify back.
python_echo() {
    start_server python
    for v in 1.2 1.3; do
        out=$(timeout 60 "$py" "$peer" echo-client "$port" "$pki/ca.pem" $v $big 2>&1)
        case "$out" in
        "TLSv$v echoed $big bytes, sha256 "*", closed cleanly")
            pass "python TLS $v: $big bytes echoed intact, close_notify both ways" ;;
        *) bad "python TLS $v: $out" ;;
        esac
    done
    check "python: the server saw both clients end cleanly" \
        [ "$(count "$tmp/python.log" "cleanly after echoing $big bytes")" -eq 2 ]
    stop_server python TERM
}

if have openssl; then
    s_client_echo 1.2 TERM
    s_client_echo 1.3 INT
else
    skip "openssl s_client against tls_echo_server (openssl not installed)"
fi
if have gnutls-cli; then
    gnutls_cli_echo 1.2 INT
    gnutls_cli_echo 1.3 TERM
else
    skip "gnutls-cli against tls_echo_server (gnutls-bin not installed)"
fi
python_echo

# ---- 2. tls_echo_client against real servers --------------------------------------

client_check() { # $1: name, $2: expected version, $3: message, $4: client output file, $5: status
    if [ "$5" -eq 0 ] && grep -q "Connected over TLSv$2" "$4" &&
        grep -q "Data received: '$3" "$4" && grep -q "closed cleanly" "$4"; then
        pass "$1: tls_echo_client got its message back over TLS $2 and closed"
    else
        bad "$1: tls_echo_client exit $5"
        show "$4"
    fi
}

against_s_server() { # $1: version
    name=s_server_$1
    port=$(free_port)
    mkfifo "$tmp/$name.relay"
    openssl s_server -quiet -naccept 1 -accept "127.0.0.1:$port" -cert "$pki/server.pem" \
        -key "$pki/server.key" -tls1_${1#1.} -msg -msgfile "$tmp/$name.msg" \
        0<>"$tmp/$name.relay" 1>"$tmp/$name.relay" 2>"$tmp/$name.err" &
    sp=$!
    pids="$pids $sp"
    wait_listen "$port" || bad "$name: s_server did not start"
    timeout 20 "$b/examples/tls_echo_client" --ca "$pki/ca.pem" --port "$port" \
        "hello s_server" >"$tmp/$name.out" 2>&1
    client_check "$name" "$1" "hello s_server" "$tmp/$name.out" $?
    wait_line "$tmp/$name.msg" "<<< .*Alert.*close_notify"
    kill $sp 2>/dev/null
    wait $sp 2>/dev/null
    if grep -q "<<< TLS $1, Alert .*close_notify" "$tmp/$name.msg" &&
        ! grep -q "unexpected eof" "$tmp/$name.err"; then
        pass "$name: s_server received close_notify"
    else
        bad "$name: s_server saw no close_notify"
        show "$tmp/$name.err"
    fi
}

# gnutls-serv --echo answers lines: the message ends with one. It has no option to
# listen on loopback only; it runs for the one connection.
against_gnutls_serv() { # $1: version
    name=gnutls_serv_$1
    port=$(free_port)
    gnutls-serv -d 5 --echo -p "$port" --x509certfile "$pki/server.pem" \
        --x509keyfile "$pki/server.key" --priority "NORMAL:-VERS-ALL:+VERS-TLS$1" \
        >"$tmp/$name.log" 2>"$tmp/$name.err" &
    gp=$!
    pids="$pids $gp"
    wait_line "$tmp/$name.err" "listening on IPv4" || bad "$name: gnutls-serv did not start"
    timeout 20 "$b/examples/tls_echo_client" --ca "$pki/ca.pem" --port "$port" \
        "hello gnutls-serv
" >"$tmp/$name.out" 2>&1
    client_check "$name" "$1" "hello gnutls-serv" "$tmp/$name.out" $?
    wait_line "$tmp/$name.err" "Close notify - was received"
    kill $gp 2>/dev/null
    wait $gp 2>/dev/null
    if grep -q "Close notify - was received" "$tmp/$name.err" &&
        ! grep -q "non-properly terminated" "$tmp/$name.err"; then
        pass "$name: gnutls-serv received close_notify"
    else
        bad "$name: gnutls-serv saw no close_notify"
        grep -v "^|<" "$tmp/$name.err" | head -20
    fi
}

against_python() { # $1: version
    name=python_server_$1
    "$py" "$peer" echo-server "$pki/server.pem" "$pki/server.key" "$1" >"$tmp/$name.log" 2>&1 &
    pp=$!
    pids="$pids $pp"
    wait_line "$tmp/$name.log" "^listening" || bad "$name: python server did not start"
    port=$(sed -n 's/^listening //p' "$tmp/$name.log")
    timeout 20 "$b/examples/tls_echo_client" --ca "$pki/ca.pem" --port "$port" \
        "hello python" >"$tmp/$name.out" 2>&1
    client_check "$name" "$1" "hello python" "$tmp/$name.out" $?
    wait $pp
    st=$?
    if [ $st -eq 0 ] && grep -q "close_notify received after 12 bytes" "$tmp/$name.log"; then
        pass "$name: python's read returned b'' on close_notify (no SSLEOFError)"
    else
        bad "$name: python server exit $st"
        show "$tmp/$name.log"
    fi
}

for v in 1.2 1.3; do
    if have openssl && have ss; then
        against_s_server $v
    else
        skip "tls_echo_client against s_server $v (openssl or ss not installed)"
    fi
    if have gnutls-serv; then
        against_gnutls_serv $v
    else
        skip "tls_echo_client against gnutls-serv $v (gnutls-bin not installed)"
    fi
    against_python $v
done

# ---- 3. STARTTLS ------------------------------------------------------------------

port=$(free_port)
"$b/examples/starttls" server --cert "$pki/server.pem" --key "$pki/server.key" --port "$port" \
    >"$tmp/starttls.log" 2>&1 &
starttls=$!
pids="$pids $starttls"
wait_line "$tmp/starttls.log" "Serving on" || bad "starttls server did not start"
for mode in one bytes; do
    out=$(timeout 20 "$py" "$peer" starttls "$port" "$pki/ca.pem" $mode 2>&1)
    case "$out" in
    TLSv1.3" with "*" bytes of ClientHello: echo 'ping over TLS', closed cleanly")
        pass "starttls ($mode): handshake, echo over TLS, clean close: $out" ;;
    *) bad "starttls ($mode): $out" ;;
    esac
done
# The point of initial_data: the ClientHello that came with the command was used.
check "starttls: the ClientHello read with STARTTLS went to TLS (initial_data)" \
    grep -q "STARTTLS: [1-9][0-9]* bytes of TLS came with the command" "$tmp/starttls.log"
out=$(timeout 20 "$py" "$peer" starttls "$port" "$pki/ca.pem" plaintext 2>&1)
case "$out" in
"handshake refused"*) pass "starttls (plaintext after STARTTLS): $out" ;;
*) bad "starttls (plaintext after STARTTLS): $out" ;;
esac
check "starttls: the server took PLAINTEXT-AFTER as a failed ClientHello" \
    grep -q "CIO_ETLSNOTTLS" "$tmp/starttls.log"
out=$(timeout 20 "$b/examples/starttls" client --ca "$pki/ca.pem" --port "$port" 2>&1)
st=$?
case "$out" in
*"S: 220 go ahead"*"TLS up: TLSv1.3"*"S: hello over TLS"*"Closed: cleanly"*)
    check "starttls client -> starttls server" [ $st -eq 0 ] ;;
*) bad "starttls client -> starttls server: exit $st: $out" ;;
esac
kill -TERM $starttls
wait $starttls
st=$?
check "starttls server stopped cleanly on SIGTERM" [ $st -eq 0 ]
[ $st -eq 0 ] || show "$tmp/starttls.log"

# ---- 4. refusals ---------------------------------------------------------------------

# The control: this s_client can speak TLS 1.1 where a server allows it.
tls11_control() {
    cport=$(free_port)
    mkfifo "$tmp/tls11.relay"
    openssl s_server -quiet -naccept 1 -accept "127.0.0.1:$cport" -cert "$pki/server.pem" \
        -key "$pki/server.key" -tls1_1 -cipher DEFAULT@SECLEVEL=0 \
        0<>"$tmp/tls11.relay" 1>"$tmp/tls11.relay" 2>/dev/null &
    sp=$!
    pids="$pids $sp"
    wait_listen "$cport"
    echo | timeout 10 openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0 \
        -connect "127.0.0.1:$cport" >"$tmp/tls11_control.out" 2>&1
    kill $sp 2>/dev/null
    wait $sp 2>/dev/null
    grep -q "Protocol  : TLSv1.1" "$tmp/tls11_control.out" &&
        ! grep -q "Cipher is (NONE)" "$tmp/tls11_control.out"
}

refusals() {
    start_server refusals
    if tls11_control; then
        pass "control: s_client -tls1_1 gets TLS 1.1 from s_server -tls1_1"
    else
        bad "control: s_client -tls1_1 could not get TLS 1.1 from s_server"
        show "$tmp/tls11_control.out"
    fi
    echo | timeout 10 openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0 \
        -connect "127.0.0.1:$port" >"$tmp/tls11.out" 2>&1
    st=$?
    wait_line "$tmp/refusals.log" "No TLS connection"
    if [ $st -ne 0 ] && grep -q "Cipher is (NONE)" "$tmp/tls11.out" &&
        grep -q "No TLS connection: .*(CIO_ETLSVERSION)" "$tmp/refusals.log"; then
        pass "TLS 1.1 refused: no handshake, the server names the version"
    else
        bad "TLS 1.1: s_client exit $st"
        show "$tmp/tls11.out"
    fi
    renegotiation
    out=$(timeout 20 "$py" "$peer" echo-client "$port" "$pki/ca.pem" 1.3 65536 2>&1)
    case "$out" in
    *"closed cleanly") pass "the server still serves others after both refusals" ;;
    *) bad "after the refusals: $out" ;;
    esac
    stop_server refusals TERM
}

# s_client's "R" line asks for a renegotiation (TLS 1.2): a second ClientHello
# goes out; the server must not answer it with a ServerHello.
renegotiation() {
    (sleep 0.5; printf 'R\n'; sleep 0.5; printf 'after\n'; sleep 0.5) |
        timeout 10 openssl s_client -tls1_2 -no_ign_eof -msg -msgfile "$tmp/reneg.msg" \
            -CAfile "$pki/ca.pem" -connect "127.0.0.1:$port" >"$tmp/reneg.out" 2>"$tmp/reneg.err"
    hellos=$(count "$tmp/reneg.msg" ">>> TLS 1.2, Handshake .*ClientHello")
    answers=$(count "$tmp/reneg.msg" "<<< TLS 1.2, Handshake .*ServerHello$")
    if [ "$hellos" -eq 2 ] && [ "$answers" -eq 1 ] && grep -q RENEGOTIATING "$tmp/reneg.err" &&
        ! grep -q "^after" "$tmp/reneg.out"; then
        pass "renegotiation refused: 2 ClientHellos, 1 ServerHello, nothing echoed after"
    else
        bad "renegotiation: $hellos ClientHellos, $answers ServerHellos"
        show "$tmp/reneg.err"
    fi
}

if have openssl && have ss; then
    refusals
else
    skip "TLS 1.1 and renegotiation refusals (openssl or ss missing)"
fi

exit $fail
