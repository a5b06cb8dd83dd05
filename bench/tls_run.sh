#!/bin/sh
# bench/tls_run.sh: TLS over loopback. coreiod's http-hello over TLS against
# nginx, and a coreio TLS echo server against uvloop's, one worker each.
#
#     sh bench/tls_run.sh COREIOD COREIO_BENCH [ECHO_COREIO]
#
# Certificates from tests/tls_pki.sh (into a temporary directory): ECDSA
# P-256 (server.pem) and RSA-2048 (server-rsa.pem), both signed by its CA,
# which the load generator verifies every handshake against. Servers, each
# pinned to CPU 0 with one worker (the server protocol of bench/lib.sh):
#   coreiod  http-hello, and echo, on a TLS listener (bench/coreiod_echo.sh
#            with COREIOD_TLS_CERT and COREIOD_TLS_KEY); skipped with a
#            message when this coreiod takes no tls_certificate
#   nginx    bench/nginx_hello.sh NGINX PORT CERT KEY: `return 200`, TLS 1.2
#            and 1.3, `ssl_session_cache shared:SSL:10m`, session tickets on
#   coreio   ECHO_COREIO PORT CERT KEY (bench/echo_coreio.c over TLS)
#   uvloop   bench/echo_py.py --loop uvloop --cert CERT --key KEY
# nginx-light has no stream module (Debian's libnginx-mod-stream), so nginx
# is only an HTTPS peer here, not an echo one.
#
# The figures, each with its load generator pinned to CPU 1 (coreio-bench
# with -t 1 --no-pin, and wrk for https when installed):
#   https          HTTP/1.1 keep-alive GETs over TLS, TLS_CONNS connections
#                  (default 50), ECDSA: requests/s
#   hs-ecdsa-full, hs-ecdsa-resumed, hs-rsa-full, hs-rsa-resumed
#                  a new TLS connection per GET (coreio-bench --new-conn,
#                  with --tls-resume for the resumed ones), TLS_HS_CONNS
#                  connections being opened at any time (default 16):
#                  handshakes/s, each with its request
#   echo-1k        1 KiB messages echoed over TLS, TLS_ECHO_CONNS connections
#                  (the per-message cost, where the event loop shows)
#   echo-64k       64 KiB messages echoed over TLS, TLS_ECHO_CONNS
#                  connections (default 10), one message in flight each:
#                  MB/s each way
# Per server, figure, load generator and run: a 1 s warm-up, a sample of the
# server's CPU time (utime + stime of it and its descendants, /proc), the
# measured run, another sample. Reported as the median of TLS_RUNS runs
# (default 3; each starts each server afresh): the rate, latency p50 and p99
# (for a new connection: from its connect to its reply), the server's CPU
# time per operation (request, handshake or 64 KiB message) and use (100% =
# all of CPU 0), the load generator's CPU use (near 100%: it, not the
# server, sets the pace), the rate per server CPU (the rate divided by the
# server's CPU use: what one core of it would do if the load generator kept
# up), the share of handshakes resumed, and errors; then the ratios
# coreiod/nginx and coreio/uvloop against the goals (0.9x nginx's rate at no
# more CPU per operation; 2x uvloop's rate).
#
# Environment: TLS_SECONDS (measured seconds per run, default 3), TLS_RUNS,
# TLS_CONNS, TLS_HS_CONNS, TLS_ECHO_CONNS, NGINX (default: nginx on PATH or
# /usr/sbin/nginx), top_srcdir (default: this script's ".."). The exit status
# is 1 if a server or a run failed; a missing peer is not a failure.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
py=/usr/bin/python3
secs=${TLS_SECONDS:-3}
runs=${TLS_RUNS:-3}
conns=${TLS_CONNS:-50}
hs_conns=${TLS_HS_CONNS:-16}
echo_conns=${TLS_ECHO_CONNS:-10}
srv_cpu=0
load_cpu=1
begin_run tls_run.sh

warn() {
    echo "tls_run.sh: $*" >&2
}

# "operations rate p50 p99 resumed% errors" from wrk --latency output in file $1.
parse_wrk() {
    set -- $(wrk_fields "$1")
    echo "$1 $2 $3 $4 - $5"
}

# The same from coreio-bench's --json line in file $2 for figure $1: the
# operations are requests, handshakes (hs-*) or 64 KiB messages (echo-64k,
# whose rate is MB/s each way).
parse_cb() {
    non_2xx=$(json_get non_2xx "$2") # http only
    errors=$(($(json_get errors "$2") + ${non_2xx:-0}))
    made=$(json_get connections_made "$2")
    case $1 in
    hs-*)
        ops=$made
        rate=$(json_get connections_per_s "$2")
        resumed=$(awk -v r="$(json_get resumed "$2")" -v n="$made" \
            'BEGIN { printf "%.1f\n", (n > 0 ? 100 * r / n : 0) }')
        ;;
    echo-*)
        ops=$(json_get requests "$2")
        rate=$(awk -v b="$(json_get bytes_in "$2")" -v s="$(json_get duration_s "$2")" \
            'BEGIN { printf "%.1f\n", b / s / 1e6 }')
        resumed=-
        ;;
    *)
        ops=$(json_get requests "$2")
        rate=$(json_get requests_per_s "$2")
        resumed=-
        ;;
    esac
    echo "$ops $rate $(json_get p50 "$2") $(json_get p99 "$2") $resumed $errors"
}

# coreio-bench's options for figure $1 (the CA's path holds no space: mktemp -d).
cb_args() {
    tls="--tls --tls-ca $tmp/pki/ca.pem"
    case $1 in
    https) echo "--mode http $tls -c $conns" ;;
    hs-*-full) echo "--mode http $tls --new-conn -c $hs_conns" ;;
    hs-*-resumed) echo "--mode http $tls --new-conn --tls-resume -c $hs_conns" ;;
    echo-1k) echo "--mode echo $tls -s 1024 -c $echo_conns" ;;
    echo-64k) echo "--mode echo $tls -s 65536 -c $echo_conns" ;;
    esac
}

# Run load generator $gen for figure $1, pinned to the load CPU, for $2
# seconds, output to file $3. In the background, so that a signal to this
# script is handled at once.
load() {
    case $gen in
    wrk)
        taskset -c "$load_cpu" "$wrk" -t1 -c"$conns" -d"$2"s --latency \
            "https://127.0.0.1:$port/" </dev/null >"$3" 2>"$tmp/load.err" &
        ;;
    coreio-bench)
        # shellcheck disable=SC2046 # cb_args prints a list of words
        taskset -c "$load_cpu" "$cbench" $(cb_args "$1") -t 1 --no-pin -d "$2" --json \
            127.0.0.1 "$port" </dev/null >"$3" 2>"$tmp/load.err" &
        ;;
    esac
    wait_load "$name, $1, $gen: load generator"
}

# One result line: figure, generator, server, then rate, p50, p99, CPU
# us/operation, server CPU %, load CPU %, the rate per CPU of the server (at
# 100 %), resumed %, errors.
result() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fig" "$gen" "$name" "$@" \
        >>"$tmp/results"
}

# One measured run of load generator $gen for figure $fig on the running server.
measure() {
    if ! load "$fig" 1 /dev/null; then
        result error - - - - - - - -
        failed=1
        return
    fi
    s0=$(cpus_busy "$srv_cpu,$load_cpu")
    t0=$(cpu_ticks "$srv_pid")
    times >"$tmp/times.0"
    if ! load "$fig" "$secs" "$tmp/load.out"; then
        result error - - - - - - - -
        failed=1
        return
    fi
    times >"$tmp/times.1"
    t1=$(cpu_ticks "$srv_pid")
    c=$(($(child_ticks "$tmp/times.1") - $(child_ticks "$tmp/times.0")))
    check_quiet_cpus "tls_run.sh: $name, $fig, $gen" "$s0" "$(cpus_busy "$srv_cpu,$load_cpu")" \
        "$srv_cpu,$load_cpu" "$secs" $((t1 - t0 + c))
    # Split "operations rate p50 p99 resumed errors" into $1..$6.
    # shellcheck disable=SC2046
    case $gen in
    wrk) set -- $(parse_wrk "$tmp/load.out") ;;
    *) set -- $(parse_cb "$fig" "$tmp/load.out") ;;
    esac
    if [ $# -ne 6 ] || ! awk -v n="$1" -v e="$6" 'BEGIN { exit !(n ~ /^[0-9]+$/ && n > 0 &&
        e ~ /^[0-9]+$/) }'; then
        warn "$name, $fig, $gen: no operations in the output"
        sed 's/^/  /' "$tmp/load.out" >&2
        result error - - - - - - - -
        failed=1
        return
    fi
    [ "$6" -eq 0 ] || warn "$name, $fig, $gen: $6 errors or non-2xx responses"
    result "$2" "$3" "$4" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$1" -v c="$c" -v s="$secs" \
        -v r="$2" 'BEGIN {
            printf "%.2f\t%.0f\t%.0f\t%.1f", t / hz * 1e6 / n, 100 * t / hz / s, 100 * c / hz / s,
                (t > 0 ? r * s * hz / t : 0)
        }')" "$5" "$6"
}

# Medians over the runs, one line per figure, generator and server in the order they ran.
medians() {
    cut -f 1-3 "$tmp/results" | awk '!seen[$0]++' | while IFS='	' read -r f g s; do
        line="$f	$g	$s"
        for col in 4 5 6 7 8 9 10 11 12; do
            v=$(awk -F'\t' -v f="$f" -v g="$g" -v s="$s" -v c="$col" \
                '$1 == f && $2 == g && $3 == s { print $c }' "$tmp/results" | median)
            line="$line	$v"
        done
        printf '%s\n' "$line"
    done
}

table() {
    awk -F'\t' '
    function unit(f) { return f == "https" ? "requests/s" : f ~ /^hs-/ ? "handshakes/s" : "MB/s" }
    function ok(x) { return x != "" && x != "-" }
    # A ratio a/b of metric m between servers a and b for figure f and generator g.
    function ratio(f, g, a, b, m) {
        x = v[f, g, a, m]; y = v[f, g, b, m]
        if (!ok(x) || !ok(y) || y + 0 <= 0) return "-"
        return sprintf("%.2f", x / y)
    }
    # Whether the ratios meet the goal against peer b: "yes", "no" or "-".
    function met(f, g, a, b,    r, c) {
        r = ratio(f, g, a, b, "rate"); c = ratio(f, g, a, b, "cpu")
        if (r == "-") return "-"
        if (b == "nginx") return (r >= 0.9 && c != "-" && c <= 1.0) ? "yes" : "no"
        return r >= 2.0 ? "yes" : "no"
    }
    {
        row[NR] = $0; v[$1, $2, $3, "rate"] = $4; v[$1, $2, $3, "cpu"] = $7
        v[$1, $2, $3, "p99"] = $6; v[$1, $2, $3, "cap"] = $10
        if (!(($1, $2) in seen)) { seen[$1, $2] = 1; pairs[np++] = $1 SUBSEP $2 }
    }
    END {
        print "| figure | load generator | server | rate | unit | p50 us | p99 us " \
            "| server CPU us/op | server CPU % | load generator CPU % | rate per server CPU " \
            "| resumed % | errors |"
        print "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (r = 1; r <= NR; r++) {
            split(row[r], c, "\t")
            rate = c[4] == "-" ? "error" : sprintf("%.1f", c[4])
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c[1],
                c[2], c[3], rate, unit(c[1]), c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]
        }
        print ""
        print "| figure | load generator | servers | rate ratio | CPU/op ratio " \
            "| rate per server CPU ratio | p99 ratio | goal | goal met |"
        print "|---|---|---|---:|---:|---:|---:|---|---|"
        for (i = 0; i < np; i++) {
            split(pairs[i], k, SUBSEP)
            peers = k[1] ~ /^echo-/ ? "coreio/uvloop coreiod/uvloop" : "coreiod/nginx"
            n = split(peers, ps, " ")
            for (j = 1; j <= n; j++) {
                split(ps[j], ab, "/")
                goal = ab[2] == "nginx" ? ">= 0.9x rate, <= 1.0x CPU/op" : ">= 2x rate"
                if (ratio(k[1], k[2], ab[1], ab[2], "rate") == "-") continue
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k[1], k[2], ps[j],
                    ratio(k[1], k[2], ab[1], ab[2], "rate"), ratio(k[1], k[2], ab[1], ab[2], "cpu"),
                    ratio(k[1], k[2], ab[1], ab[2], "cap"), ratio(k[1], k[2], ab[1], ab[2], "p99"),
                    goal, met(k[1], k[2], ab[1], ab[2])
            }
        }
    }'
}

# 0 if coreiod $1 takes a TLS listener: a configuration with one passes -t.
coreiod_has_tls() {
    cat >"$tmp/tls-check.ini" <<EOF
[listener check]
service = echo
address = 127.0.0.1:1
tls_certificate = $tmp/pki/server.pem
tls_key = $tmp/pki/server.key
EOF
    "$1" -t -c "$tmp/tls-check.ini" >"$tmp/tls-check.out" 2>&1
}

# ---- check the tools -----------------------------------------------------------
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    die "usage: sh tls_run.sh COREIOD COREIO_BENCH [ECHO_COREIO]"
fi
coreiod=$1
cbench=$2
echo_coreio=${3:-}
[ -x "$cbench" ] || die "$cbench is not built"
awk -v s="$secs" -v r="$runs" -v c="$conns" -v h="$hs_conns" -v e="$echo_conns" 'BEGIN {
    exit !(s ~ /^[1-9][0-9]*$/ && r ~ /^[1-9][0-9]*$/ && c ~ /^[1-9][0-9]*$/ &&
        h ~ /^[1-9][0-9]*$/ && e ~ /^[1-9][0-9]*$/) }' ||
    die "TLS_SECONDS, TLS_RUNS, TLS_CONNS, TLS_HS_CONNS and TLS_ECHO_CONNS: positive integers"
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$srv_cpu,$load_cpu" true 2>/dev/null || die "needs CPUs 0 and 1"
hz=$(getconf CLK_TCK)
sh "$top/tests/tls_pki.sh" "$tmp/pki" >"$tmp/pki.err" 2>&1 ||
    die "tests/tls_pki.sh could not make the certificates: $(cat "$tmp/pki.err")"
wrk=$(command -v wrk || :)
[ -n "$wrk" ] || warn "skipped wrk: not found (Debian: wrk)"

# The servers, as "NAME|FIGURES|COMMAND" with {PORT} in COMMAND.
pki=$tmp/pki
set --
if [ -x "$coreiod" ] && coreiod_has_tls "$coreiod"; then
    ciod="sh $(quote "$top/bench/coreiod_echo.sh") $(quote "$coreiod") {PORT}"
    for cert in ecdsa rsa; do
        pem=$pki/server.pem key=$pki/server.key figs="https hs-ecdsa-full hs-ecdsa-resumed"
        if [ $cert = rsa ]; then
            pem=$pki/server-rsa.pem key=$pki/server-rsa.key figs="hs-rsa-full hs-rsa-resumed"
        fi
        set -- "$@" "coreiod|$figs|env COREIOD_TLS_CERT=$pem COREIOD_TLS_KEY=$key $ciod http-hello"
    done
    env="env COREIOD_TLS_CERT=$pki/server.pem COREIOD_TLS_KEY=$pki/server.key"
    set -- "$@" "coreiod|echo-1k echo-64k|$env $ciod echo"
elif [ -x "$coreiod" ]; then
    warn "skipped coreiod over TLS: this coreiod takes no TLS listener ($(head -n 1 \
        "$tmp/tls-check.out"))"
else
    warn "skipped coreiod: $coreiod is not built"
fi
nginx=${NGINX:-$(command -v nginx || :)}
if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then
    nginx=/usr/sbin/nginx # not on a user's PATH
fi
if [ -n "$nginx" ] && [ -x "$nginx" ]; then
    ng="sh $(quote "$top/bench/nginx_hello.sh") $(quote "$nginx") {PORT}"
    set -- "$@" "nginx|https hs-ecdsa-full hs-ecdsa-resumed|$ng $pki/server.pem $pki/server.key" \
        "nginx|hs-rsa-full hs-rsa-resumed|$ng $pki/server-rsa.pem $pki/server-rsa.key"
else
    warn "skipped nginx: not found (Debian: nginx-light)"
fi
warn "skipped nginx for echo-1k and echo-64k: nginx-light has no stream module (Debian: libnginx-mod-stream)"
if [ -n "$echo_coreio" ] && [ -x "$echo_coreio" ]; then
    set -- "$@" "coreio|echo-1k echo-64k|$(quote "$echo_coreio") {PORT} $pki/server.pem $pki/server.key"
else
    warn "skipped coreio for echo-64k: bench/echo_coreio is not built"
fi
if [ -x "$py" ] && "$py" -c "import uvloop" 2>/dev/null; then
    set -- "$@" "uvloop|echo-1k echo-64k|$py $(quote "$top/bench/echo_py.py") --loop uvloop \
--cert $pki/server.pem --key $pki/server.key {PORT}"
else
    warn "skipped uvloop: $py cannot import it (Debian: python3-uvloop)"
fi

# ---- the runs ------------------------------------------------------------------
: >"$tmp/results"
rep=1
while [ $rep -le "$runs" ]; do
    for spec in "$@"; do
        name=${spec%%|*}
        rest=${spec#*|}
        figs=${rest%%|*}
        port=$(free_port) || die "no free TCP port in 20000..29999"
        cmd=$(subst_port "${rest#*|}" "$port")
        if start_server "$cmd"; then
            for fig in $figs; do
                gens=coreio-bench
                [ "$fig" != https ] || [ -z "$wrk" ] || gens="wrk $gens"
                for gen in $gens; do
                    measure
                done
            done
        else
            warn "$name: exited or printed no \"listening\" within 10 s: $cmd"
            for fig in $figs; do
                gen=coreio-bench
                result error - - - - - - - -
            done
            failed=1
        fi
        stop_server
    done
    rep=$((rep + 1))
done

echo "## TLS: coreiod vs nginx, coreio vs uvloop ($(date -u +%Y-%m-%d), $(nproc) CPUs," \
    "Linux $(uname -r), $(openssl version 2>/dev/null | cut -d' ' -f1-2), median of $runs" \
    "runs of ${secs} s, server on CPU $srv_cpu, load generator on CPU $load_cpu)"
echo
medians | table
exit $failed
