#!/bin/bash
# tests/coreiod_tls.sh: TLS listeners of coreiod(8) from the outside, with
# openssl s_client, curl and python3's ssl on loopback. Checks -t on TLS
# mistakes (each reported at its FILE:LINE), echo and http-hello over TLS on
# two workers with balance = reuseport and handoff and on a Unix socket,
# plaintext sent to a TLS port, client certificates, tls_min_version, the
# handshake timeout, 2,000 failed handshakes (RSS and descriptors stay flat),
# SIGHUP with a new certificate under the same file names (new handshakes
# get it, an established session goes on) and with a broken key (refused,
# the running certificate stays), and SIGTERM with idle TLS connections
# (each ends with close_notify). The clients are in tests/coreiod_tls_peer.py.
# Exit 0: pass, 77: skipped (openssl, curl or python3 missing), 1: fail.
set -euo pipefail

bin=${COREIOD:-${top_builddir:-.}/tools/coreiod}
srcdir=${top_srcdir:-..}
[ -f "$srcdir/tests/tls_pki.sh" ] || srcdir=$(cd "$(dirname "$0")/.." && pwd)
peer=$srcdir/tests/coreiod_tls_peer.py

for tool in openssl curl python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not found"
        exit 77
    fi
done
py=/usr/bin/python3 # Debian's: its ssl module is the system OpenSSL's
[ -x "$py" ] || py=$(command -v python3)
if [ ! -x "$bin" ]; then
    echo "FAIL: $bin not found or not executable"
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") # -t runs from another directory

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    exec 3>&- 2>/dev/null || true
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/testlib.sh"
pki=$tmp/pki
sh "$srcdir/tests/tls_pki.sh" "$pki" >"$tmp/pki.log" 2>&1 || {
    echo "FAIL: tests/tls_pki.sh:"
    show "$tmp/pki.log"
    exit 1
}
ca=$pki/ca.pem

# Wait (up to $3 seconds, default 10) for the fixed text $2 in file $1.
wait_for() {
    local i=0 n=$((${3:-10} * 20))
    while [ $i -lt $n ]; do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
forget() {
    local p keep=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}
# Wait up to $2 seconds for child $1 to exit; its status goes to $status.
wait_exit() {
    local i=0 n=$(($2 * 50))
    while alive "$1"; do
        [ $i -ge $n ] && return 1
        sleep 0.02
        i=$((i + 1))
    done
    status=0
    wait "$1" 2>/dev/null || status=$?
    forget "$1"
}
# Start coreiod on config $2 (log $tmp/$1.log) and wait until it is ready. Sets $pid, $log.
start() {
    log=$tmp/$1.log
    "$bin" -c "$2" >"$tmp/$1.out" 2>"$log" &
    pid=$!
    pids+=("$pid")
    local i=0
    while ! grep -sqF 'coreiod: ready' "$log"; do
        if ! alive "$pid" || [ $i -ge 200 ]; then
            echo "FAIL: coreiod ($1) did not log 'coreiod: ready' within 10 s; its log:"
            show "$log"
            exit 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
}
# The log after its last line containing $2 (file $1).
log_after() { awk -v t="$2" 'index($0, t) { n = NR } { l[NR] = $0 } END { for (i = n + 1; i <= NR; i++) print l[i] }' "$1"; }
# The line of the first "$2 =" in file $1.
line_of() { grep -n "^$2 =" "$1" | head -1 | cut -d: -f1; }

# ---------------------------------------------------------------------------
# 1. coreiod -t: each TLS mistake at its FILE:LINE, with its reason. The files
#    live in conf/ and name ../pki/...: relative to the file, not to the
#    directory -t runs in.
# ---------------------------------------------------------------------------
mkdir -p "$tmp/conf"
printf 'not a certificate\n' >"$pki/garbage.pem"
listener="[global]
admin = off

[listener secure]
service = echo
address = 127.0.0.1:7443"
# refuse NAME KEY REASON: conf/NAME.ini (written before) fails -t at KEY's line with REASON.
refuse() {
    local f=$tmp/conf/$1.ini line rc=0
    line=$(line_of "$f" "$2")
    (cd / && timeout 10 "$bin" -t -c "$f") >/dev/null 2>"$tmp/t.err" || rc=$?
    if [ "$rc" -eq 1 ] && grep -F "$1.ini:$line: " "$tmp/t.err" | grep -qF -- "$3"; then
        pass "-t $1.ini: exit 1, $1.ini:$line: ... $3"
    else
        bad "-t $1.ini: exit $rc, expected 1 and '$1.ini:$line: ... $3' in:"
        show "$tmp/t.err"
    fi
}
tls_conf() { # NAME, then the lines after the listener head
    local name=$1
    shift
    printf '%s\n' "$listener" "$@" >"$tmp/conf/$name.ini"
}
tls_conf missing-cert "tls_certificate = ../pki/missing.pem" "tls_key = ../pki/server.key"
refuse missing-cert tls_certificate "/../pki/missing.pem: No such file or directory"
tls_conf missing-key "tls_certificate = ../pki/server.pem" "tls_key = ../pki/missing.key"
refuse missing-key tls_key "$tmp/conf/../pki/missing.key: No such file or directory"
tls_conf mismatch "tls_certificate = ../pki/server.pem" "tls_key = ../pki/client.key"
refuse mismatch tls_key "the private key does not match the certificate"
tls_conf garbage-cert "tls_certificate = ../pki/garbage.pem" "tls_key = ../pki/server.key"
refuse garbage-cert tls_certificate "cannot read the certificate (PEM expected)"
tls_conf garbage-key "tls_certificate = ../pki/server.pem" "tls_key = ../pki/garbage.pem"
refuse garbage-key tls_key "cannot read the private key (PEM expected)"
tls_conf missing-ca "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key" \
    "tls_ca = ../pki/missing-ca.pem" "tls_verify_client = yes"
refuse missing-ca tls_ca "missing-ca.pem: No such file or directory"
tls_conf garbage-ca "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key" \
    "tls_ca = ../pki/garbage.pem" "tls_verify_client = optional"
refuse garbage-ca tls_ca "cannot read the CA certificates (PEM expected)"
tls_conf verify-no-ca "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key" \
    "tls_verify_client = yes"
refuse verify-no-ca tls_verify_client "tls_verify_client = yes needs tls_ca"
tls_conf key-only "tls_key = ../pki/server.key"
refuse key-only tls_key "tls_key without tls_certificate"
tls_conf cert-only "tls_certificate = ../pki/server.pem"
refuse cert-only tls_certificate "tls_certificate without tls_key"
tls_conf old-version "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key" \
    "tls_min_version = TLSv1.1"
refuse old-version tls_min_version '"TLSv1.1" is not one of TLSv1.2, TLSv1.3'
tls_conf udp "protocol = udp" "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key"
refuse udp tls_certificate "a udp listener cannot speak TLS"
tls_conf good "tls_certificate = ../pki/server.pem" "tls_key = ../pki/server.key" \
    "tls_ca = ../pki/ca.pem" "tls_verify_client = optional" "tls_min_version = TLSv1.3" \
    "tls_handshake_timeout = 5s"
rc=0
(cd / && timeout 10 "$bin" -t -c "$tmp/conf/good.ini") >/dev/null 2>"$tmp/t.err" || rc=$?
[ "$rc" -eq 0 ] && pass "-t with every TLS key, files relative to the file: exit 0" || {
    bad "-t good.ini: exit $rc (expected 0):"
    show "$tmp/t.err"
}
if "$bin" --print-default-config | grep -q '^tls_'; then
    bad "the embedded default configuration has tls_ keys"
else
    pass "the embedded default configuration stays plaintext"
fi

# ---------------------------------------------------------------------------
# 2. One daemon, two workers: TLS on reuseport, handoff and unix listeners.
# ---------------------------------------------------------------------------
read -r p_erp p_eho p_hrp p_hho p_mtls p_v13 p_plain p_bulk p_admin < \
    <("$py" "$srcdir/tests/coreiod_peer.py" ports 9)
sock=$tmp/echo.sock
cp "$pki/server.pem" "$tmp/live.pem"
cp "$pki/server.key" "$tmp/live.key"
conf=$tmp/main.ini
live="tls_certificate = live.pem
tls_key = live.key"
cat >"$conf" <<EOF
[global]
workers = 2
pin = no
drain_timeout = 2s
admin = 127.0.0.1:$p_admin

[listener echo-rp]
service = echo
address = 127.0.0.1:$p_erp
$live

[listener echo-ho]
service = echo
address = 127.0.0.1:$p_eho
balance = handoff
$live

[listener http-rp]
service = http-hello
address = 127.0.0.1:$p_hrp
$live

[listener http-ho]
service = http-hello
address = 127.0.0.1:$p_hho
balance = handoff
$live

[listener mtls]
service = http-hello
address = 127.0.0.1:$p_mtls
tls_certificate = pki/server.pem
tls_key = pki/server.key
tls_ca = pki/ca.pem
tls_verify_client = yes

[listener v13]
service = echo
address = 127.0.0.1:$p_v13
tls_certificate = pki/server-rsa.pem
tls_key = pki/server-rsa.key
tls_min_version = TLSv1.3
tls_handshake_timeout = 1s

[listener echo-unix]
service = echo
protocol = unix
address = $sock
$live

[listener plain]
service = http-hello
address = 127.0.0.1:$p_plain

[listener echo-bulk]
service = echo
address = 127.0.0.1:$p_bulk
write_buffer_high = 256M
write_buffer_low = 0
$live
EOF
start main "$conf"
main_pid=$pid main_log=$log
n_tls=$(grep -c ' (TLS)$' "$main_log" || true)
[ "$n_tls" -eq 8 ] && pass "8 listeners logged as TLS, the plaintext one not" ||
    bad "$n_tls listeners logged ' (TLS)', expected 8"

s_client() { # openssl s_client -brief to $1 (HOST:PORT, or -unix PATH), more options after
    local where=$1
    shift
    if [ "${where#/}" != "$where" ]; then set -- -unix "$where" "$@"; else set -- -connect "$where" "$@"; fi
    timeout 10 openssl s_client -brief -CAfile "$ca" -verify_return_error \
        -verify_hostname localhost "$@"
}
# echo_tls WHAT WHERE [s_client options]: one line through TLS echo with s_client.
echo_tls() {
    local what=$1 where=$2 got
    shift 2
    got=$( (printf 'ping %s\n' "$what"; sleep 0.5) | s_client "$where" "$@" 2>"$tmp/s.err") || true
    if [ "$got" = "ping $what" ] && grep -q '^Verification: OK' "$tmp/s.err"; then
        pass "$what: echo through s_client, certificate verified ($(grep -m1 '^Protocol version' "$tmp/s.err"))"
    else
        bad "$what: s_client echo got [$got], expected [ping $what]; stderr:"
        show "$tmp/s.err"
    fi
}
echo_tls "tcp reuseport" "127.0.0.1:$p_erp"
echo_tls "tcp handoff" "127.0.0.1:$p_eho"
echo_tls "unix" "$sock"
echo_tls "tcp reuseport, TLSv1.2" "127.0.0.1:$p_erp" -tls1_2
echo_tls "tls_min_version = TLSv1.3, TLSv1.3" "127.0.0.1:$p_v13" -tls1_3
got=$( (printf 'ping\n'; sleep 0.5) | s_client "127.0.0.1:$p_v13" -tls1_2 2>"$tmp/s.err") || true
if [ -z "$got" ] && ! grep -q '^CONNECTION ESTABLISHED' "$tmp/s.err"; then
    pass "tls_min_version = TLSv1.3: a TLSv1.2 client is refused"
else
    bad "tls_min_version = TLSv1.3: a TLSv1.2 client got [$got]:"
    show "$tmp/s.err"
fi

# https with curl, several requests on one connection.
for l in "reuseport:$p_hrp" "handoff:$p_hho"; do
    got=$(timeout 10 curl -sS --cacert "$ca" "https://localhost:${l#*:}/a" \
        "https://localhost:${l#*:}/b" 2>"$tmp/c.err") || true
    if [ "$got" = "$(printf 'Hello, World!\nHello, World!')" ]; then
        pass "https ${l%%:*}: curl --cacert gets 'Hello, World!' twice"
    else
        bad "https ${l%%:*}: curl got [$got]: $(cat "$tmp/c.err")"
    fi
done
got=$(timeout 10 curl -sS "http://127.0.0.1:$p_plain/" 2>&1) || true
[ "$got" = "Hello, World!" ] && pass "the plaintext listener beside them answers plaintext" ||
    bad "plaintext listener: [$got]"

# Many connections at once: with two workers each serves some of them, over TLS.
if out=$(timeout 30 "$py" "$peer" hold "$p_eho" "$ca" 6 2>&1) &&
    out2=$(timeout 30 "$py" "$peer" hold "$p_erp" "$ca" 16 2>&1); then
    pass "held at once: handoff: $out; reuseport: $out2"
else
    bad "TLS connections held at once: $out ${out2:-}"
fi
sleep 0.6 # the loops publish their counters four times a second
timeout 10 curl -sS "http://127.0.0.1:$p_admin/metrics" >"$tmp/m1" || bad "admin scrape failed"
for l in echo-ho echo-rp; do
    w0=$(awk -v k="coreio_listener_connections_accepted_total{listener=\"$l\",worker=\"0\"}" '$1 == k { print $2 }' "$tmp/m1")
    w1=$(awk -v k="coreio_listener_connections_accepted_total{listener=\"$l\",worker=\"1\"}" '$1 == k { print $2 }' "$tmp/m1")
    if [ "${w0:-0}" -gt 0 ] && [ "${w1:-0}" -gt 0 ]; then
        pass "$l: both workers served TLS connections ($w0 and $w1)"
    else
        bad "$l: connections per worker: [${w0:-}] [${w1:-}], expected both above 0"
    fi
done

# Plaintext to a TLS port gets no plaintext back.
for p in "$p_hrp" "$p_eho"; do
    if out=$(timeout 20 "$py" "$peer" plaintext "$p" 2>&1); then pass "port $p: $out"; else
        bad "port $p: $out"; fi
done

# Client certificates: tls_verify_client = yes.
mtls=https://localhost:$p_mtls/
got=$(timeout 10 curl -sS --cacert "$ca" --cert "$pki/client.pem" --key "$pki/client.key" "$mtls" 2>&1) || true
[ "$got" = "Hello, World!" ] && pass "tls_verify_client = yes: curl --cert client.pem is served" ||
    bad "tls_verify_client = yes with client.pem: [$got]"
for who in none client-self; do
    opts=()
    [ "$who" = none ] || opts=(--cert "$pki/$who.pem" --key "$pki/$who.key")
    rc=0
    got=$(timeout 10 curl -sS --cacert "$ca" "${opts[@]}" "$mtls" 2>"$tmp/c.err") || rc=$?
    if [ "$rc" -ne 0 ] && [ -z "$got" ]; then
        pass "tls_verify_client = yes: a client with $who certificate is refused (curl: $(head -c 120 "$tmp/c.err"))"
    else
        bad "tls_verify_client = yes: a client with $who certificate: curl exit $rc, body [$got]"
    fi
done

# tls_handshake_timeout = 1s: a client that sends nothing is closed long before the default 60 s.
took=$(timeout 90 "$py" "$peer" silent "$p_v13" 2>&1) || took="failed: $took"
if awk -v t="$took" 'BEGIN { exit !(t + 0 >= 0.5 && t + 0 < 30) }'; then
    pass "tls_handshake_timeout = 1s: a silent client is closed after ${took}s"
else
    bad "tls_handshake_timeout = 1s: a silent client: $took"
fi

# ---------------------------------------------------------------------------
# 3. Failed handshakes leave nothing behind: RSS and descriptors stay flat.
# ---------------------------------------------------------------------------
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$main_pid/status"; }
nfds() { ls "/proc/$main_pid/fd" | wc -l; }
# Wait up to 10 s for the descriptor count to come back to $1.
fds_back_to() {
    local i=0
    while [ "$(nfds)" -ne "$1" ] && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ "$(nfds)" -eq "$1" ]
}
timeout 60 "$py" "$peer" garbage "$p_hrp" 200 >/dev/null 2>&1 || bad "warm-up garbage failed"
sleep 0.5
fds0=$(nfds) rss0=$(rss)
if out=$(timeout 120 "$py" "$peer" garbage "$p_hrp" 1000 2>&1) &&
    out2=$(timeout 120 "$py" "$peer" garbage "$p_eho" 1000 2>&1); then
    sleep 0.5
    fds_back_to "$fds0" || true
    fds1=$(nfds) rss1=$(rss)
    # A leak of the TLS state would be many KiB per handshake: 4 MiB is a generous bound.
    # AddressSanitizer's quarantine holds freed memory (up to 256 MiB): there
    # LeakSanitizer judges at exit (section 5) instead.
    asan=$(grep -c libasan "/proc/$main_pid/maps" || true)
    if [ "$fds1" -eq "$fds0" ] && { [ "$asan" -gt 0 ] || [ "$rss1" -le $((rss0 + 4096)) ]; }; then
        pass "2,000 failed handshakes: RSS ${rss0} -> ${rss1} KiB$([ "$asan" -eq 0 ] ||
            echo ' (not compared under AddressSanitizer)'), descriptors $fds0 -> $fds1"
    else
        bad "2,000 failed handshakes: RSS ${rss0} -> ${rss1} KiB, descriptors $fds0 -> $fds1"
    fi
else
    bad "garbage handshakes: $out ${out2:-}"
fi
alive "$main_pid" || {
    bad "coreiod died during the failed handshakes; log:"
    show "$main_log"
}

# ---------------------------------------------------------------------------
# 4. SIGHUP: a new certificate under the same file names, then a broken key.
# ---------------------------------------------------------------------------
serial() { # the serial of the certificate served at $1 (HOST:PORT or a unix path)
    local where=(-connect "$1")
    [ "${1#/}" = "$1" ] || where=(-unix "$1")
    { timeout 10 openssl s_client "${where[@]}" -CAfile "$ca" -verify_return_error -showcerts \
        </dev/null 2>/dev/null || true; } | openssl x509 -serial -noout 2>/dev/null || true
}
old_serial=$(openssl x509 -in "$pki/server.pem" -serial -noout)
got=$(serial "127.0.0.1:$p_erp")
[ "$got" = "$old_serial" ] && pass "before the reload: the served certificate is server.pem ($got)" ||
    bad "before the reload: served [$got], expected [$old_serial]"

# An s_client session established before the reload.
mkfifo "$tmp/in"
s_client "127.0.0.1:$p_erp" <"$tmp/in" >"$tmp/sess.out" 2>"$tmp/sess.err" &
sess=$!
pids+=("$sess")
exec 3>"$tmp/in"
echo "before reload" >&3
wait_for "$tmp/sess.out" "before reload" 10 && pass "established session: echo before the reload" ||
    bad "established session: no echo before the reload"

# A new key and certificate (another serial), written over live.pem and live.key.
(cd "$pki" && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out new.key 2>/dev/null &&
    openssl req -new -key new.key -subj /CN=localhost -config openssl.cnf -out new.csr &&
    openssl x509 -req -in new.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile openssl.cnf \
        -extensions server -days 30 -out new.pem 2>/dev/null && cat ca.pem >>new.pem) ||
    bad "could not make a new certificate"
new_serial=$(openssl x509 -in "$pki/new.pem" -serial -noout)
[ "$new_serial" != "$old_serial" ] || bad "the new certificate has the old serial"
cp "$pki/new.pem" "$tmp/live.pem.tmp" && mv "$tmp/live.pem.tmp" "$tmp/live.pem"
cp "$pki/new.key" "$tmp/live.key.tmp" && mv "$tmp/live.key.tmp" "$tmp/live.key"
kill -HUP "$main_pid"
if wait_for "$main_log" "coreiod: reloaded" 10; then pass "SIGHUP: 'coreiod: reloaded' logged"; else
    bad "SIGHUP: no 'coreiod: reloaded'; log:"
    show "$main_log" 60
fi
for where in "127.0.0.1:$p_erp" "127.0.0.1:$p_eho" "127.0.0.1:$p_hho" "$sock"; do
    got=$(serial "$where")
    [ "$got" = "$new_serial" ] && pass "after the reload, $where serves the new certificate ($got)" ||
        bad "after the reload, $where serves [$got], expected [$new_serial]"
done
echo "after reload" >&3
wait_for "$tmp/sess.out" "after reload" 10 &&
    pass "the session established before the reload still echoes after it" ||
    bad "the established session stopped working across the reload: $(cat "$tmp/sess.out")"
got=$(timeout 10 curl -sS --cacert "$ca" "https://localhost:$p_hrp/" 2>&1) || true
[ "$got" = "Hello, World!" ] && pass "https after the reload verifies the new chain" ||
    bad "https after the reload: [$got]"

# A broken key: the reload is refused at the key's line and the running certificate stays.
printf 'garbage\n' >"$tmp/live.key"
key_line=$(grep -n '^tls_key = live.key' "$conf" | head -1 | cut -d: -f1)
kill -HUP "$main_pid"
if wait_for "$main_log" "reload failed" 10 && sleep 0.3 &&
    log_after "$main_log" "reload failed" | grep -qF "main.ini:$key_line: tls_key:"; then
    pass "SIGHUP with a broken key: 'reload failed', main.ini:$key_line: tls_key: ..."
else
    bad "SIGHUP with a broken key: expected 'reload failed' and main.ini:$key_line: tls_key:; log:"
    show "$main_log" 80
fi
[ "$(grep -cF 'coreiod: reloaded' "$main_log")" -eq 1 ] || bad "a broken key was logged as reloaded"
got=$(serial "127.0.0.1:$p_erp")
[ "$got" = "$new_serial" ] && pass "after the refused reload the running certificate still serves" ||
    bad "after the refused reload: served [$got], expected [$new_serial]"
echo "after broken" >&3
wait_for "$tmp/sess.out" "after broken" 10 && pass "the established session survives the refused reload" ||
    bad "the established session after the refused reload: $(cat "$tmp/sess.out")"
exec 3>&-
wait_exit "$sess" 10 || bad "s_client did not end at the end of its input"
cp "$pki/new.key" "$tmp/live.key"

# ---------------------------------------------------------------------------
# 5. SIGTERM with TLS connections open: each ends with close_notify, the idle
#    ones from http-hello's drain and from the drain deadline (echo keeps its
#    idle ones open), and at the deadline a connection whose echo is still in
#    the server's write buffer gets it all before its close_notify: the
#    deadline closes TLS connections rather than aborting them (an abort
#    drops what is buffered, and then sends no close_notify). The bulk
#    client reads as soon as the deadline is logged, and closing gives it a
#    second to do so.
# ---------------------------------------------------------------------------
if out=$(timeout 90 "$py" "$peer" close_notify "$ca" "$main_pid" "$main_log" "$p_admin" \
    "http:$p_hrp" "http:$p_hho" "echo:$p_erp" "echo:$p_eho" "bulk:$p_bulk:echo-bulk" 2>&1); then
    pass "SIGTERM: $(echo "$out" | tr '\n' ';')"
else
    bad "SIGTERM with TLS connections open:"
    echo "$out" | sed 's/^/    | /'
fi
if wait_exit "$main_pid" 15; then
    [ "$status" -eq 0 ] && grep -qF 'coreiod: stopped' "$main_log" &&
        grep -qF 'listener echo-rp: 1 connections still open after 2 s' "$main_log" &&
        pass "SIGTERM: exit 0 after the drain deadline closed the idle echo connections" || {
        bad "SIGTERM: exit $status; log:"
        show "$main_log" 80
    }
else
    bad "coreiod still runs 15 s after SIGTERM"
fi
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$main_log"; then
    bad "sanitizer reports in coreiod's log:"
    grep -A20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$main_log" | sed 's/^/    | /'
fi

if [ "$fail" -ne 0 ]; then
    echo "FAIL: coreiod_tls.sh: see the FAIL lines above"
    exit 1
fi
echo "PASS: coreiod_tls.sh"
exit 0
