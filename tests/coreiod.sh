#!/bin/bash
# tests/coreiod.sh: coreiod(8) from the outside, with real clients on loopback.
# Checks the command line (-t on every tests/config file, usage errors), echo
# over TCP, UDP and Unix sockets with socat, http-hello with curl, python3
# (keep-alive, pipelining) and wrk, the admin listener's Prometheus text,
# graceful shutdown on SIGTERM under load and with an idle connection past
# drain_timeout, SIGINT, and SIGHUP reloads of a changed and of a broken file.
# The clients are in tests/coreiod_peer.py. Exit 0: pass, 77: skipped (python3,
# socat or curl missing), 1: fail. COREIOD names the binary elsewhere.
set -euo pipefail

bin=${COREIOD:-${top_builddir:-.}/tools/coreiod}
srcdir=${top_srcdir:-..}
[ -d "$srcdir/tests/config" ] || srcdir=$(cd "$(dirname "$0")/.." && pwd)
confdir=$srcdir/tests/config
peer=$srcdir/tests/coreiod_peer.py

for tool in python3 socat curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not found"
        exit 77
    fi
done
py=$(command -v python3)
if [ ! -x "$bin" ]; then
    echo "FAIL: $bin not found or not executable"
    exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/testlib.sh"
check() { # $1: what, rest: a command that must succeed
    local what=$1
    shift
    if "$@"; then pass "$what"; else bad "$what"; fi
}
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

# Is process $1 still there (not gone, not a zombie)?
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Wait up to $2 seconds for child $1 to exit; its status goes to $status, and
# the time it was seen gone to $gone_at. Returns 1 if it is still running.
wait_exit() {
    local i=0 n=$(($2 * 50))
    while alive "$1"; do
        if [ $i -ge $n ]; then
            return 1
        fi
        sleep 0.02
        i=$((i + 1))
    done
    gone_at=$EPOCHREALTIME
    status=0
    wait "$1" 2>/dev/null || status=$?
    forget "$1"
    return 0
}
forget() {
    local p keep=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}

# Start coreiod as $1 (the name of its log, $tmp/$1.log) on config $2, more
# options after; wait until it is ready. Sets $pid, $log.
start() {
    local name=$1 conf=$2
    shift 2
    log=$tmp/$name.log
    # SIGINT is ignored in background jobs of a script: give coreiod the default.
    "$py" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$bin" -c "$conf" "$@" >"$tmp/$name.out" 2>"$log" &
    pid=$!
    pids+=("$pid")
    local i=0
    while ! grep -sqF 'coreiod: ready' "$log"; do
        if ! alive "$pid" || [ $i -ge 200 ]; then
            echo "FAIL: coreiod ($name) did not log 'coreiod: ready' within 10 s; its log:"
            show "$log"
            exit 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
}

# Send signal $1 to $pid, wait up to $2 s: it must exit 0 and log 'coreiod: stopped'.
stop() {
    kill "-$1" "$pid" || true
    if ! wait_exit "$pid" "$2"; then
        bad "coreiod did not exit within $2 s of SIG$1; its log:"
        show "$log"
        return 1
    fi
    if [ "$status" -eq 0 ] && grep -qF 'coreiod: stopped' "$log"; then
        pass "SIG$1: coreiod logged 'coreiod: stopped' and exited 0"
    else
        bad "SIG$1: exit status $status (expected 0); log:"
        show "$log"
    fi
}

# The log after its first line containing $2 (file $1).
log_after() { awk -v t="$2" 'f { print } index($0, t) { f = 1 }' "$1"; }

# ---------------------------------------------------------------------------
# 1. The command line.
# ---------------------------------------------------------------------------
run() { # run coreiod bounded; status in $rc, stdout/stderr in $tmp/run.{out,err}
    rc=0
    timeout 10 "$bin" "$@" >"$tmp/run.out" 2>"$tmp/run.err" || rc=$?
}

for f in "$confdir"/bad-*.ini; do
    base=${f##*/}
    line=$(sed -n '1s/^; expect: \([0-9][0-9]*\).*/\1/p' "$f")
    if [ -z "$line" ]; then
        bad "$base has no '; expect: LINE' first line"
        continue
    fi
    run -t -c "$f"
    if [ "$rc" -eq 1 ] && grep -qF "$base:$line:" "$tmp/run.err"; then
        pass "-t $base: exit 1, $base:$line: reported"
    else
        bad "-t $base: exit $rc (expected 1), stderr should hold '$base:$line:':"
        show "$tmp/run.err"
    fi
done

run -t -c "$confdir/good.ini"
[ "$rc" -eq 0 ] && pass "-t good.ini: exit 0" || {
    bad "-t good.ini: exit $rc (expected 0):"
    show "$tmp/run.err"
}
run -t
[ "$rc" -eq 0 ] && pass "-t (embedded configuration): exit 0" || {
    bad "-t with no -c: exit $rc (expected 0):"
    show "$tmp/run.err"
}
run --print-default-config
cp "$tmp/run.out" "$tmp/default.ini"
if [ "$rc" -eq 0 ] && grep -q '^\[listener ' "$tmp/default.ini"; then
    run -t -c "$tmp/default.ini"
    [ "$rc" -eq 0 ] && pass "--print-default-config: exit 0, and its output passes -t" || {
        bad "--print-default-config output fails -t (exit $rc):"
        show "$tmp/run.err"
    }
else
    bad "--print-default-config: exit $rc, output without a [listener ...] section"
fi
run -t -c "$tmp/no-such-file.ini"
[ "$rc" -eq 1 ] && grep -qF "no-such-file.ini:" "$tmp/run.err" &&
    pass "-t on a missing file: exit 1, 'FILE: reason'" ||
    bad "-t on a missing file: exit $rc (expected 1), stderr: $(cat "$tmp/run.err")"
run --help
[ "$rc" -eq 0 ] && [ -s "$tmp/run.out" ] && pass "--help: exit 0 with text on stdout" ||
    bad "--help: exit $rc, stdout $(wc -c <"$tmp/run.out") bytes"
run --version
[ "$rc" -eq 0 ] && grep -q '[0-9]\.[0-9]' "$tmp/run.out" && pass "--version: exit 0" ||
    bad "--version: exit $rc, stdout [$(cat "$tmp/run.out")]"
# Bad usage exits 2 (coreiod(8), EXIT STATUS): unknown options and bad values.
for args in "--no-such-option" "-x" "--workers 0x" "--workers 1025" "--workers -1" \
    "--workers" "--log-level loud" "-c"; do
    # shellcheck disable=SC2086
    run $args
    [ "$rc" -eq 2 ] && pass "usage error '$args': exit 2" ||
        bad "usage error '$args': exit $rc (expected 2), stderr: $(head -c 300 "$tmp/run.err")"
done

# What only the app can check: the service exists and speaks the protocol.
read -r p1 p2 p3 p4 p5 p6 p7 < <("$py" "$peer" ports 7)
cat >"$tmp/unknown-service.ini" <<EOF
[global]
admin = off

[listener mystery]
service = no-such-service
address = 127.0.0.1:$p1
EOF
run -t -c "$tmp/unknown-service.ini"
if [ "$rc" -eq 1 ] && grep -qE "unknown-service\.ini:(4|5):" "$tmp/run.err"; then
    pass "-t with an unknown service: exit 1, reported at its line"
else
    bad "-t with an unknown service: exit $rc (expected 1 and unknown-service.ini:5:):"
    show "$tmp/run.err"
fi
cat >"$tmp/udp-http.ini" <<EOF
[global]
admin = off

[listener web]
service = http-hello
protocol = udp
address = 127.0.0.1:$p1
EOF
run -t -c "$tmp/udp-http.ini"
[ "$rc" -eq 1 ] && grep -qE "udp-http\.ini:[0-9]+:" "$tmp/run.err" &&
    pass "-t with http-hello over udp: exit 1" || {
    bad "-t with http-hello over udp: exit $rc (expected 1 and udp-http.ini:LINE:):"
    show "$tmp/run.err"
}

# A listener that cannot open: the daemon exits 1 (and serves nothing).
"$py" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("held", flush=True); time.sleep(15)' "$p1" >"$tmp/holder.out" &
holder=$!
pids+=("$holder")
wait_for "$tmp/holder.out" held 5 || bad "could not hold port $p1"
cat >"$tmp/in-use.ini" <<EOF
[global]
workers = 1
admin = off

[listener taken]
service = echo
address = 127.0.0.1:$p1
EOF
run -c "$tmp/in-use.ini"
[ "$rc" -eq 1 ] && pass "a listener address in use: exit 1" || {
    bad "a listener address in use: exit $rc (expected 1):"
    show "$tmp/run.err"
}
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
forget "$holder"

# ---------------------------------------------------------------------------
# 2. The services, the admin listener, and SIGHUP: one daemon, two workers.
# ---------------------------------------------------------------------------
p_echo=$p1 p_http=$p2 p_b=$p3 p_c=$p4 p_admin=$p5 p_load=$p6 p_idle=$p7
sock=$tmp/echo.sock
conf=$tmp/main.ini
global="[global]
workers = 2
pin = no
log_level = info
drain_timeout = 3s
admin = 127.0.0.1:$p_admin"
kept="[listener echo-tcp]
service = echo
address = 127.0.0.1:$p_echo

[listener echo-udp]
service = echo
protocol = udp
address = 127.0.0.1:$p_echo

[listener echo-unix]
service = echo
protocol = unix
address = $sock

[listener web]
service = http-hello
address = 127.0.0.1:$p_http"
printf '%s\n\n%s\n\n[listener old]\nservice = echo\naddress = 127.0.0.1:%s\n' \
    "$global" "$kept" "$p_b" >"$conf"

run -t -c "$conf"
[ "$rc" -eq 0 ] || {
    bad "-t on the test's own configuration: exit $rc:"
    show "$tmp/run.err"
}
start main "$conf"
main_pid=$pid main_log=$log
if grep -qE 'coreiod: ready \(2 workers, [0-9]+ listeners\)' "$main_log"; then
    pass "ready: $(grep -o 'ready (.*)' "$main_log")"
else
    bad "ready line is not 'coreiod: ready (2 workers, M listeners)': $(grep ready "$main_log")"
fi
# -t opens no socket: checking the running daemon's own file still passes.
run -t -c "$conf"
[ "$rc" -eq 0 ] && pass "-t while the daemon holds its ports: exit 0" ||
    bad "-t while the daemon runs: exit $rc: $(cat "$tmp/run.err")"

echo_via() { # $1: what, $2: socat address, $3: timeout option
    local got
    got=$(printf 'ping %s\n' "$1" | timeout 10 socat "$3" - "$2" 2>&1) || true
    if [ "$got" = "ping $1" ]; then pass "$1 echo with socat"; else
        bad "$1 echo with socat ($2): got [$got], expected [ping $1]"; fi
}
echo_via tcp "TCP:127.0.0.1:$p_echo" -t2
echo_via udp "UDP:127.0.0.1:$p_echo" -t0.5
echo_via unix "UNIX-CONNECT:$sock" -t2
# A bigger stream than one read: 1 MiB comes back whole.
head -c 1048576 /dev/urandom >"$tmp/blob"
timeout 10 socat -t2 - "TCP:127.0.0.1:$p_echo" <"$tmp/blob" >"$tmp/blob.back" 2>/dev/null || true
check "1 MiB through TCP echo comes back whole" cmp -s "$tmp/blob" "$tmp/blob.back"

# http-hello with curl.
code=$(timeout 10 curl -sS -D "$tmp/h.head" -o "$tmp/h.body" -w '%{http_code}' \
    "http://127.0.0.1:$p_http/") || code="curl failed ($?)"
tr -d '\r' <"$tmp/h.head" >"$tmp/h.h"
if [ "$code" = 200 ] && printf 'Hello, World!\n' | cmp -s - "$tmp/h.body" &&
    grep -qix 'content-length: 14' "$tmp/h.h" && grep -qi '^date: ' "$tmp/h.h"; then
    pass "curl: 200, 'Hello, World!\\n', Content-Length: 14, a Date header"
else
    bad "curl: status $code, body [$(cat "$tmp/h.body" 2>/dev/null)], headers:"
    show "$tmp/h.h"
fi
got=$(timeout 10 curl -sS -v "http://127.0.0.1:$p_http/a" "http://127.0.0.1:$p_http/b" \
    2>"$tmp/curl2.err") || true
if [ "$got" = "$(printf 'Hello, World!\nHello, World!')" ] &&
    grep -qi 're-using existing connection' "$tmp/curl2.err"; then
    pass "curl: two requests on one keep-alive connection"
else
    bad "curl keep-alive: got [$got]; $(grep -ci 're-using' "$tmp/curl2.err") reuses"
fi
if out=$(timeout 15 "$py" "$peer" pipeline "$p_http" 2>&1); then pass "http-hello: $out"; else
    bad "http-hello keep-alive/pipelining: $out"; fi

if command -v wrk >/dev/null 2>&1; then
    timeout 15 wrk -t1 -c10 -d1s "http://127.0.0.1:$p_http/" >"$tmp/wrk.out" 2>&1 || true
    n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
    if [ "${n:-0}" -gt 0 ] && ! grep -qE 'Socket errors|Non-2xx' "$tmp/wrk.out"; then
        pass "wrk -t1 -c10 -d1s: $n requests, no socket errors, no non-2xx"
    else
        bad "wrk: $n requests; output:"
        show "$tmp/wrk.out"
    fi
else
    echo "SKIP: wrk not installed"
fi

# The admin listener: Prometheus text. The loops snapshot their counters
# four times a second, so wait a little for the traffic above to show.
sleep 0.4
scrape() { # $1: file
    timeout 10 curl -sS -D "$1.head" -o "$1" "http://127.0.0.1:$p_admin/metrics"
}
if scrape "$tmp/m1"; then
    tr -d '\r' <"$tmp/m1.head" >"$tmp/m1.h"
    grep -qi '^content-type: text/plain' "$tmp/m1.h" && grep -qix 'connection: close' "$tmp/m1.h" &&
        head -1 "$tmp/m1.h" | grep -q ' 200' &&
        pass "admin: 200, text/plain, Connection: close" || {
        bad "admin response head:"
        show "$tmp/m1.h"
    }
    if out=$("$py" "$peer" metrics "$tmp/m1" 2 echo-tcp,echo-udp,echo-unix,web,old 2>&1); then
        pass "admin /metrics: $out, one series per worker and per listener and worker"
    else
        bad "admin /metrics is not what coreiod(8) says:"
        echo "$out" | sed 's/^/    | /'
    fi
    sum() { "$py" "$peer" counter "$@"; }
    [ "$(sum "$tmp/m1" coreio_listener_connections_accepted_total web)" -ge 4 ] &&
        [ "$(sum "$tmp/m1" coreio_listener_connections_accepted_total echo-tcp)" -ge 2 ] &&
        [ "$(sum "$tmp/m1" coreio_listener_connections_accepted_total echo-unix)" -ge 1 ] &&
        [ "$(sum "$tmp/m1" coreio_bytes_in_total)" -ge 1048576 ] &&
        [ "$(sum "$tmp/m1" coreio_bytes_out_total)" -ge 1048576 ] &&
        pass "admin: accepted connections and bytes count the traffic above" || {
        bad "admin counters do not count the traffic above:"
        grep -E '^coreio_(bytes|listener_connections_accepted|connections_accepted)' "$tmp/m1" |
            sed 's/^/    | /' || true
    }
    sleep 0.3
    if scrape "$tmp/m2" &&
        [ "$(sum "$tmp/m2" coreio_loop_iterations_total)" -gt "$(sum "$tmp/m1" coreio_loop_iterations_total)" ]; then
        pass "admin: loop iterations grow between two scrapes"
    else
        bad "admin: loop iterations did not grow between two scrapes 0.3 s apart"
    fi
else
    bad "curl http://127.0.0.1:$p_admin/metrics failed"
fi

# The admin listener serves /metrics only: GET and HEAD; any other path is
# 404, another method on /metrics 405 with the methods it allows.
admin_ask() { # $1: what, $2: expected status, $3: a header line it must have, rest: curl options
    local what=$1 want=$2 hdr=$3 code
    shift 3
    code=$(timeout 10 curl -sS -o "$tmp/a.body" -D "$tmp/a.head" -w '%{http_code}' "$@" \
        2>"$tmp/a.err") || code="curl failed: $(cat "$tmp/a.err")"
    tr -d '\r' <"$tmp/a.head" >"$tmp/a.h" 2>/dev/null || true
    if [ "$code" = "$want" ] && { [ -z "$hdr" ] || grep -qix -- "$hdr" "$tmp/a.h"; }; then
        pass "admin: $what: $want${hdr:+, $hdr}"
    else
        bad "admin: $what: status $code (expected $want${hdr:+ with $hdr}); head:"
        show "$tmp/a.h"
    fi
}
admin=http://127.0.0.1:$p_admin
admin_ask "GET /metrics" 200 "" "$admin/metrics"
grep -q '^coreio_workers 2$' "$tmp/a.body" || bad "admin: GET /metrics has no coreio_workers 2"
admin_ask "GET /metrics?name[]=x" 200 "" -g "$admin/metrics?name[]=x"
admin_ask "HEAD /metrics" 200 "" -I "$admin/metrics"
# HEAD: the Content-Length of the metrics, and nothing after the head.
printf 'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n' |
    timeout 10 socat -t2 - "TCP:127.0.0.1:$p_admin" 2>&1 | tr -d '\r' >"$tmp/head.raw" || true
if grep -qiE '^content-length: [1-9]' "$tmp/head.raw" &&
    awk 'body { n++ } /^$/ { body = 1 } END { exit !(body && n == 0) }' "$tmp/head.raw"; then
    pass "admin: HEAD /metrics: the metrics' Content-Length, no body"
else
    bad "admin: HEAD /metrics: a body, or no Content-Length of the metrics:"
    show "$tmp/head.raw"
fi
admin_ask "GET /" 404 "" "$admin/"
admin_ask "GET /foo" 404 "" "$admin/foo"
admin_ask "GET /metricsx" 404 "" "$admin/metricsx"
admin_ask "GET /metrics/" 404 "" "$admin/metrics/"
admin_ask "POST /metrics" 405 "allow: GET, HEAD" -X POST "$admin/metrics"
admin_ask "DELETE /metrics" 405 "allow: GET, HEAD" -X DELETE "$admin/metrics"
admin_ask "POST /foo" 404 "" -X POST "$admin/foo"

# SIGHUP with a changed file: web (A) and the echo listeners are unchanged,
# old (B) is gone and new (C) comes. HTTP keep-alive requests run on A
# throughout; a connection to B opened before must drain.
timeout 20 "$py" "$peer" reload "$p_http" "$p_b" "$main_log" >"$tmp/reload.out" 2>&1 &
client=$!
pids+=("$client")
wait_for "$tmp/reload.out" running 10 || bad "the reload client did not start"
sleep 0.5
printf '%s\n\n%s\n\n[listener new]\nservice = echo\naddress = 127.0.0.1:%s\n' \
    "$global" "$kept" "$p_c" >"$conf.tmp"
mv "$conf.tmp" "$conf"
kill -HUP "$main_pid"
if wait_for "$main_log" "coreiod: reloaded" 5; then pass "SIGHUP: 'coreiod: reloaded' logged"; else
    bad "SIGHUP: no 'coreiod: reloaded' within 5 s; log:"
    show "$main_log"
fi
if wait_exit "$client" 20 && [ "$status" -eq 0 ]; then
    pass "SIGHUP: $(grep -m1 '^requests on A' "$tmp/reload.out"); $(tail -1 "$tmp/reload.out" | sed 's/^ok: //')"
else
    bad "SIGHUP with keep-alive traffic on A:"
    show "$tmp/reload.out"
fi
echo_via "tcp (new listener C after the reload)" "TCP:127.0.0.1:$p_c" -t2
if out=$(timeout 10 "$py" "$peer" refused "$p_b" 2>&1); then
    pass "removed listener B refuses new connections: $out"
else
    bad "removed listener B: $out"
fi
echo_via "unix (kept across the reload)" "UNIX-CONNECT:$sock" -t2
echo_via "udp (kept across the reload)" "UDP:127.0.0.1:$p_echo" -t0.5
sleep 0.3
if scrape "$tmp/m3" && out=$("$py" "$peer" metrics "$tmp/m3" 2 echo-tcp,echo-udp,echo-unix,web,new 2>&1); then
    pass "admin /metrics after the reload lists listener new"
else
    bad "admin /metrics after the reload:"
    echo "${out:-scrape failed}" | sed 's/^/    | /'
fi

# SIGHUP with a broken file: an unknown key in [listener web]; nothing changes.
{
    printf '%s\n\n%s\n' "$global" "$kept"
    printf 'backlog_size = 64\n\n[listener new]\nservice = echo\naddress = 127.0.0.1:%s\n' "$p_c"
} >"$conf.tmp"
mv "$conf.tmp" "$conf"
badline=$(grep -n '^backlog_size' "$conf" | cut -d: -f1)
kill -HUP "$main_pid"
if wait_for "$main_log" "reload failed" 5 && sleep 0.2 &&
    log_after "$main_log" "reload failed" | grep -qF "main.ini:$badline:"; then
    pass "SIGHUP with an unknown key: 'reload failed' logged with main.ini:$badline:"
else
    bad "SIGHUP with a broken file: expected 'reload failed' then 'main.ini:$badline:'; log:"
    show "$main_log"
fi
[ "$(grep -cF 'coreiod: reloaded' "$main_log")" -eq 1 ] ||
    bad "a broken file was logged as 'coreiod: reloaded'"
body=$(timeout 10 curl -sS "http://127.0.0.1:$p_http/") || true
[ "$body" = "Hello, World!" ] && pass "A still answers after the failed reload" ||
    bad "A after the failed reload: [$body]"
echo_via "tcp (C after the failed reload)" "TCP:127.0.0.1:$p_c" -t2
if alive "$main_pid"; then
    pid=$main_pid log=$main_log
    stop TERM 6 || true
else
    bad "coreiod died during the reloads; log:"
    show "$main_log"
fi

# ---------------------------------------------------------------------------
# 3. SIGTERM: under load nothing is lost; an idle connection is closed at
#    drain_timeout.
# ---------------------------------------------------------------------------
cat >"$tmp/load.ini" <<EOF
[global]
workers = 2
pin = no
drain_timeout = 5s
admin = off

[listener echo]
service = echo
address = 127.0.0.1:$p_load
EOF
start load "$tmp/load.ini"
if out=$(timeout 20 "$py" "$peer" load "$p_load" "$pid" 2>&1); then
    pass "SIGTERM under load: $out"
else
    bad "SIGTERM under load:"
    echo "$out" | sed 's/^/    | /'
fi
if wait_exit "$pid" 8; then
    [ "$status" -eq 0 ] && grep -qF 'coreiod: stopped' "$log" &&
        pass "SIGTERM under load: exit 0, 'coreiod: stopped'" || {
        bad "SIGTERM under load: exit $status; log:"
        show "$log"
    }
else
    bad "SIGTERM under load: coreiod still runs 8 s after its clients closed"
fi

sed -e 's/^drain_timeout = .*/drain_timeout = 1s/' -e "s/:$p_load\$/:$p_idle/" \
    "$tmp/load.ini" >"$tmp/idle.ini"
start idle "$tmp/idle.ini"
timeout 10 "$py" "$peer" idle "$p_idle" "$pid" >"$tmp/idle.out" 2>&1 &
client=$!
pids+=("$client")
if wait_exit "$pid" 6; then
    t0=$(sed -n 's/^sigterm_at //p' "$tmp/idle.out")
    took=$(awk -v a="${t0:-0}" -v b="$gone_at" 'BEGIN { printf "%.2f", b - a }')
    if [ "$status" -eq 0 ] && grep -qF 'coreiod: stopped' "$log" &&
        awk -v t="$took" 'BEGIN { exit !(t >= 0.8 && t <= 3.0) }'; then
        pass "SIGTERM with an idle connection, drain_timeout = 1s: exit 0 after ${took}s"
    else
        bad "SIGTERM with an idle connection: exit $status after ${took}s (expected 0 after 1-3 s); log:"
        show "$log"
    fi
else
    bad "SIGTERM with an idle connection and drain_timeout = 1s: still running after 6 s"
fi
if wait_exit "$client" 10 && [ "$status" -eq 0 ]; then
    pass "idle client: served during the drain, then closed ($(grep closed_after "$tmp/idle.out"))"
else
    bad "idle client:"
    show "$tmp/idle.out"
fi

# SIGINT stops as SIGTERM does.
start int "$tmp/idle.ini"
stop INT 3 || true

if [ "$fail" -ne 0 ]; then
    echo "FAIL: coreiod.sh: see the FAIL lines above"
    exit 1
fi
echo "PASS: coreiod.sh"
exit 0
