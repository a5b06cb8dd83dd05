#!/bin/sh
# bench/http_run.sh: HTTP/1.1 hello-world over loopback, coreiod's http-hello
# service against nginx, one worker each.
#
#     sh bench/http_run.sh COREIOD [COREIO_BENCH]
#
# Servers, each pinned to CPU 0 with one worker (bench/coreiod_echo.sh:
# workers = 1, cores = 0; bench/nginx_hello.sh: worker_processes 1,
# worker_cpu_affinity on CPU 0, `return 200 "Hello, World!\n"`, no access log,
# keep-alive): "coreiod" and "nginx" (skipped, with a message on stderr, when
# nginx is not installed). Load generators, pinned to CPU 1, each keeping
# HTTP_CONNS keep-alive connections (default 50) busy with one request in
# flight: wrk (`wrk -t1 -cCONNS --latency`, skipped when missing) and, when
# COREIO_BENCH is given, `coreio-bench --mode http -t 1 --no-pin`.
#
# Per server, load generator and run: a 1 s warm-up, then a sample of the
# server's CPU time (utime + stime of the process and its descendants, so
# nginx's master and worker), the measured run, another sample. Reported, as
# the median of HTTP_RUNS runs (default 3; each run starts each server
# afresh): requests/s, the latency p50 and p99, the server's CPU time per
# request and its CPU use (100% = the whole of CPU 0), the load generator's
# CPU use (near 100%: it, not the server, may set the pace) and errors; then
# the ratios coreiod/nginx.
#
# Environment: HTTP_SECONDS (measured seconds per run, default 5), HTTP_RUNS,
# HTTP_CONNS, NGINX (the nginx binary; default: nginx on PATH or
# /usr/sbin/nginx), top_srcdir (default: this script's ".."). The exit status
# is 1 if a server or a run failed; a missing peer is not a failure.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
secs=${HTTP_SECONDS:-5}
runs=${HTTP_RUNS:-3}
conns=${HTTP_CONNS:-50}
srv_cpu=0
load_cpu=1
begin_run http_run.sh

warn() {
    echo "http_run.sh: $*" >&2
}


# The same from coreio-bench's --json line in file $1.
parse_cb() {
    echo "$(json_get requests "$1") $(json_get requests_per_s "$1") $(json_get p50 "$1")" \
        "$(json_get p99 "$1") $(($(json_get errors "$1") + $(json_get non_2xx "$1")))"
}

# Run load generator $gen pinned to the load CPU for $1 seconds, output to file
# $2. In the background, so that a signal to this script is handled at once.
load() {
    case $gen in
    wrk)
        taskset -c "$load_cpu" "$wrk" -t1 -c"$conns" -d"$1"s --latency \
            "http://127.0.0.1:$port/" </dev/null >"$2" 2>"$tmp/load.err" &
        ;;
    coreio-bench)
        taskset -c "$load_cpu" "$cbench" --mode http -c "$conns" -t 1 --no-pin -d "$1" --json \
            127.0.0.1 "$port" </dev/null >"$2" 2>"$tmp/load.err" &
        ;;
    esac
    wait_load "$name, $gen: load generator"
}

# One result line: generator, server, rps, p50, p99, CPU us/request, server
# CPU %, load CPU %, errors.
result() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gen" "$name" "$@" >>"$tmp/results"
}

# One measured run of load generator $gen on the running server.
measure() {
    if ! load 1 /dev/null; then
        result error - - - - - -
        failed=1
        return
    fi
    s0=$(cpus_busy "$srv_cpu,$load_cpu")
    t0=$(cpu_ticks "$srv_pid")
    times >"$tmp/times.0"
    if ! load "$secs" "$tmp/load.out"; then
        result error - - - - - -
        failed=1
        return
    fi
    times >"$tmp/times.1"
    t1=$(cpu_ticks "$srv_pid")
    c=$(($(child_ticks "$tmp/times.1") - $(child_ticks "$tmp/times.0")))
    check_quiet_cpus "http_run.sh: $name, $gen" "$s0" "$(cpus_busy "$srv_cpu,$load_cpu")" \
        "$srv_cpu,$load_cpu" "$secs" $((t1 - t0 + c))
    # Split "requests rps p50 p99 errors" into $1..$5.
    # shellcheck disable=SC2046
    case $gen in
    wrk) set -- $(wrk_fields "$tmp/load.out") ;;
    *) set -- $(parse_cb "$tmp/load.out") ;;
    esac
    if [ $# -ne 5 ] || ! awk -v n="$1" -v e="$5" 'BEGIN { exit !(n ~ /^[0-9]+$/ && n > 0 &&
        e ~ /^[0-9]+$/) }'; then
        warn "$name, $gen: no requests in the output"
        sed 's/^/  /' "$tmp/load.out" >&2
        result error - - - - - -
        failed=1
        return
    fi
    [ "$5" -eq 0 ] || warn "$name, $gen: $5 errors or non-2xx responses"
    result "$2" "$3" "$4" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$1" -v c="$c" -v s="$secs" '
        BEGIN {
            printf "%.2f\t%.0f\t%.0f", t / hz * 1e6 / n, 100 * t / hz / s, 100 * c / hz / s
        }')" "$5"
}

# Medians over the runs, one line per generator and server in the order they ran.
medians() {
    cut -f 1,2 "$tmp/results" | awk '!seen[$0]++' | while IFS='	' read -r g s; do
        line="$g	$s"
        for col in 3 4 5 6 7 8 9; do
            v=$(awk -F'\t' -v g="$g" -v s="$s" -v c="$col" '$1 == g && $2 == s { print $c }' \
                "$tmp/results" | median)
            line="$line	$v"
        done
        printf '%s\n' "$line"
    done
}

table() {
    awk -F'\t' '
    { row[NR] = $0; v[$1, $2, "rps"] = $3; v[$1, $2, "p99"] = $5; v[$1, $2, "cpu"] = $6
      if (!($1 in seen)) { seen[$1] = 1; gens[ng++] = $1 } }
    function ratio(g, m) {
        a = v[g, "coreiod", m]; b = v[g, "nginx", m]
        if (a == "" || b == "" || a == "-" || b == "-" || b + 0 <= 0) return "-"
        return sprintf("%.2f", a / b)
    }
    END {
        print "| load generator | server | requests/s | p50 us | p99 us | server CPU us/request " \
            "| server CPU % | load generator CPU % | errors |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (r = 1; r <= NR; r++) {
            split(row[r], f, "\t")
            rps = f[3] == "-" ? "error" : sprintf("%.0f", f[3])
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], rps, f[4], f[5],
                f[6], f[7], f[8], f[9]
        }
        print ""
        print "| load generator | requests/s coreiod/nginx | CPU/request coreiod/nginx " \
            "| p99 coreiod/nginx |"
        print "|---|---:|---:|---:|"
        for (i = 0; i < ng; i++)
            printf "| %s | %s | %s | %s |\n", gens[i], ratio(gens[i], "rps"),
                ratio(gens[i], "cpu"), ratio(gens[i], "p99")
    }'
}

# ---- check the tools -----------------------------------------------------------
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    die "usage: sh http_run.sh COREIOD [COREIO_BENCH]"
fi
coreiod=$1
cbench=${2:-}
[ -x "$coreiod" ] || die "$coreiod is not built"
awk -v s="$secs" -v r="$runs" -v c="$conns" \
    'BEGIN { exit !(s ~ /^[0-9]+$/ && s > 0 && r ~ /^[1-9][0-9]*$/ && c ~ /^[1-9][0-9]*$/) }' ||
    die "HTTP_SECONDS, HTTP_RUNS and HTTP_CONNS must be positive integers"
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$srv_cpu,$load_cpu" true 2>/dev/null || die "needs CPUs 0 and 1"
hz=$(getconf CLK_TCK)

gens=
wrk=$(command -v wrk || :)
if [ -n "$wrk" ]; then
    gens=wrk
else
    warn "skipped wrk: not found (Debian: wrk)"
fi
if [ -n "$cbench" ]; then
    if [ -x "$cbench" ]; then
        gens="$gens coreio-bench"
    else
        warn "skipped coreio-bench: $cbench is not built"
    fi
fi
[ -n "$gens" ] || die "no load generator: neither wrk nor coreio-bench"

set -- "coreiod=sh $(quote "$top/bench/coreiod_echo.sh") $(quote "$coreiod") {PORT} http-hello"
nginx=${NGINX:-$(command -v nginx || :)}
if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then
    nginx=/usr/sbin/nginx # not on a user's PATH
fi
if [ -n "$nginx" ] && [ -x "$nginx" ]; then
    set -- "$@" "nginx=sh $(quote "$top/bench/nginx_hello.sh") $(quote "$nginx") {PORT}"
else
    warn "skipped nginx: not found (Debian: nginx-light)"
fi

# ---- the runs ------------------------------------------------------------------
: >"$tmp/results"
rep=1
while [ $rep -le "$runs" ]; do
    for spec in "$@"; do
        name=${spec%%=*}
        port=$(free_port) || die "no free TCP port in 20000..29999"
        cmd=$(subst_port "${spec#*=}" "$port")
        if start_server "$cmd"; then
            for gen in $gens; do
                measure
            done
        else
            warn "$name: exited or printed no \"listening\" within 10 s: $cmd"
            for gen in $gens; do
                result error - - - - - -
            done
            failed=1
        fi
        stop_server
    done
    rep=$((rep + 1))
done

echo "## HTTP hello-world, coreiod vs nginx ($(date -u +%Y-%m-%d), $(nproc) CPUs," \
    "Linux $(uname -r), median of $runs runs of ${secs} s, $conns connections," \
    "server on CPU $srv_cpu, load generator on CPU $load_cpu)"
echo
medians | table
exit $failed
