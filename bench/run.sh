#!/bin/sh
# bench/run.sh: `make bench`. Runs coreio's micro-benchmarks and the same
# workloads on python3's asyncio and uvloop in one go, and prints one Markdown
# table per group with each figure and the ratio of the peer's figure to
# coreio's (above 1: coreio is faster or smaller); then call_soon_threadsafe
# between two pinned worker loops (coreio alone), the heap cost of an idle
# connection, the TCP echo comparison of bench/echo_run.sh (raw epoll,
# asyncio, uvloop, libuv, coreio, coreiod), the UDP echo comparison of
# bench/udp_run.sh (asyncio, uvloop, coreio) and coreio's instructions per
# datagram (bench/callgrind_udp.sh), the instructions per echo request
# under callgrind (bench/callgrind_echo.sh: libevent, libuv, coreio; skipped
# without valgrind), coreiod's echo with 1 and 2
# workers (bench/workers_run.sh), coreiod's http-hello against nginx
# (bench/http_run.sh), and TLS: the heap of an idle TLS connection, and
# coreiod and coreio over TLS against nginx and uvloop (bench/tls_run.sh),
# spawning /bin/true with coreio, asyncio and uvloop (bench/spawn_run.sh),
# and issue 14's two: what PROXY headers cost per connection
# (bench/proxy_run.sh) and how long a coreiod hand-over takes against a
# naive restart (bench/handover_run.py).
# Missing peers, and coreio programs not built, are skipped with a message
# on stderr. The exit status is 1 if a network
# benchmark failed (after the others have run).
set -eu
b=${1:-.}
s=${2:-.}
scale=${BENCH_SCALE:-1}
py=/usr/bin/python3
out=$(mktemp)
pki=$(mktemp -d)
trap 'rm -rf "$out" "$pki"' EXIT

pin() {
    # The loop thread on CPU 0; threaded benchmarks put producers on CPU 1.
    if command -v taskset >/dev/null 2>&1; then taskset -c 0,1 "$@"; else "$@"; fi
}

table() { # $1: file of "impl<TAB>metric<TAB>value<TAB>unit" lines
    awk -F'\t' '
    { v[$1 "," $2] = $3; unit[$2] = $4; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
    function ratio(peer, m) {
        if (v[peer "," m] == "" || v["coreio," m] == "" || v["coreio," m] + 0 == 0 || v[peer "," m] == "nan") return "-"
        return sprintf("%.2f", v[peer "," m] / v["coreio," m])
    }
    function cell(peer, m) { return v[peer "," m] == "" ? "-" : v[peer "," m] }
    END {
        print "| metric | unit | coreio | asyncio | uvloop | asyncio/coreio | uvloop/coreio |"
        print "|---|---|---|---|---|---|---|"
        for (i = 0; i < n; i++) {
            m = order[i]
            printf "| %s | %s | %s | %s | %s | %s | %s |\n", m, unit[m], cell("coreio", m),
                cell("asyncio", m), cell("uvloop", m), ratio("asyncio", m), ratio("uvloop", m)
        }
    }' "$1"
}

group() { # $1: title, $2: coreio program, $3: python script
    : >"$out"
    if [ -x "$b/bench/$2" ]; then
        pin "$b/bench/$2" --scale "$scale" >>"$out"
    else
        echo "skipped coreio: $b/bench/$2 is not built" >&2
    fi
    for impl in asyncio uvloop; do
        if [ -x "$py" ] && "$py" -c "import $impl" 2>/dev/null; then
            pin "$py" "$s/bench/$3" --loop "$impl" --scale "$scale" >>"$out"
        else
            echo "skipped $impl: $py cannot import it (Debian: python3, python3-uvloop)" >&2
        fi
    done
    echo
    echo "### $1"
    echo
    table "$out"
}

echo "## coreio micro-benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -m))"
group "Loop scheduling" bench_loop loop_py.py
group "Tasks" bench_task task_py.py

# Two worker loops pinned to two cores; no peer runs two loops this way.
if [ -x "$b/bench/bench_mailbox" ]; then
    echo
    echo "### Between loops"
    echo
    echo "| metric | unit | coreio |"
    echo "|---|---|---|"
    pin "$b/bench/bench_mailbox" --scale "$scale" |
        awk -F'\t' '{ printf "| %s | %s | %s |\n", $2, $4, $3 }'
else
    echo "skipped between loops: $b/bench/bench_mailbox is not built" >&2
fi

group "Executor" bench_executor executor_py.py

echo
echo "### Idle connections"
echo
echo "| metric | unit | coreio |"
echo "|---|---|---|"
"$b/bench/idle_memory" 10000 | awk -F'\t' '{ printf "| %s (10,000 connections) | %s | %s |\n", $2, $4, $3 }'
# The same over TLS (ECDSA P-256, TLS 1.3, full handshakes), certificates from tests/tls_pki.sh.
if sh "$s/tests/tls_pki.sh" "$pki" >/dev/null 2>&1; then
    "$b/bench/idle_memory" 10000 --tls "$pki/server.pem" "$pki/server.key" |
        awk -F'\t' '{ printf "| %s (10,000 connections) | %s | %s |\n", $2, $4, $3 }'
else
    echo "skipped idle TLS connections: tests/tls_pki.sh failed (needs openssl)" >&2
fi

status=0
coreiod=$b/tools/coreiod
set -- coreio="$b/bench/echo_coreio {PORT}"
if [ -x "$coreiod" ]; then
    set -- "$@" coreiod="sh $s/bench/coreiod_echo.sh $coreiod {PORT}"
else
    echo "skipped coreiod: $coreiod is not built" >&2
fi
echo
top_srcdir="$s" sh "$s/bench/echo_run.sh" "$@" || status=1

if [ -x "$b/tools/coreio-bench" ]; then
    echo
    top_srcdir="$s" sh "$s/bench/udp_run.sh" "$b/tools/coreio-bench" \
        coreio="$b/bench/echo_coreio --udp {PORT}" || status=1
    if command -v valgrind >/dev/null 2>&1; then
        echo
        sh "$s/bench/callgrind_udp.sh" "$b" || status=1
    else
        echo "skipped UDP instructions per datagram: needs valgrind" >&2
    fi
else
    echo "skipped UDP echo: $b/tools/coreio-bench is not built" >&2
fi

echo
if command -v valgrind >/dev/null 2>&1 && [ -x "$b/bench/echo_libevent" ]; then
    top_srcdir="$s" sh "$s/bench/callgrind_echo.sh" "$b" || status=1
else
    echo "skipped instructions per request: needs valgrind and $b/bench/echo_libevent" >&2
fi

if [ -x "$coreiod" ]; then
    echo
    top_srcdir="$s" sh "$s/bench/workers_run.sh" "$coreiod" || status=1
    set -- "$coreiod"
    if [ -x "$b/tools/coreio-bench" ]; then
        set -- "$@" "$b/tools/coreio-bench"
    else
        echo "skipped coreio-bench as HTTP load generator: $b/tools/coreio-bench is not built" >&2
    fi
    echo
    top_srcdir="$s" sh "$s/bench/http_run.sh" "$@" || status=1
fi

if [ -x "$b/tools/coreio-bench" ]; then
    echo
    top_srcdir="$s" sh "$s/bench/tls_run.sh" "$coreiod" "$b/tools/coreio-bench" \
        "$b/bench/echo_coreio" || status=1
else
    echo "skipped TLS: $b/tools/coreio-bench is not built" >&2
fi
if command -v valgrind >/dev/null 2>&1 && [ -x "$b/bench/tls_bio" ]; then
    echo
    echo "## TLS: instructions per request, and the BIO choice"
    sh "$s/bench/callgrind_tls.sh" "$b" || status=1
    pki_cert=$pki/server.pem
    [ -f "$pki_cert" ] && "$b/bench/tls_bio" "$pki_cert" "$pki/server.key" 64 || status=1
else
    echo "skipped TLS instructions: needs valgrind and $b/bench/tls_bio" >&2
fi

echo
top_srcdir="$s" sh "$s/bench/spawn_run.sh" "$b/bench/spawn_coreio" || status=1

echo
echo "## Cross-shard calls"
"$b/bench/bench_shard_call" || status=1

if [ -x "$coreiod" ] && [ -x "$b/tools/coreio-bench" ] && command -v pkg-config >/dev/null 2>&1; then
    echo
    echo "## The kv example: CPU time"
    sh "$s/bench/kv_run.sh" "$b" "$s" || status=1
    if command -v valgrind >/dev/null 2>&1; then
        echo
        echo "## The kv example: instructions per request"
        sh "$s/bench/callgrind_kv.sh" "$b" "$s" || status=1
    fi
else
    echo "skipped the kv example: needs tools/coreiod, tools/coreio-bench and pkg-config" >&2
fi
if [ -x "$b/bench/proxy_cost" ]; then
    echo
    sh "$s/bench/proxy_run.sh" "$b" || status=1
else
    echo "skipped PROXY headers: $b/bench/proxy_cost is not built" >&2
fi
if [ -x "$coreiod" ] && [ -x "$py" ]; then
    echo
    "$py" "$s/bench/handover_run.py" "$coreiod" || status=1
else
    echo "skipped hand-overs: needs $coreiod and $py" >&2
fi
exit $status

