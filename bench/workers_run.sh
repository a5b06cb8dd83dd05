#!/bin/sh
# bench/workers_run.sh: coreiod's sharded TCP echo with 1 and with 2 workers.
#
#     sh bench/workers_run.sh COREIOD
#
# For each balance mode (reuseport, then handoff) and each worker count (1,
# then 2), runs COREIOD through bench/coreiod_echo.sh with an echo listener
# and the admin listener, workers pinned by coreiod itself (cores = 0, or
# 0,1), and loads it with bench/echo_load pinned to CPU 1: WORKERS_CONNS
# connections (default 32, so that both workers get some), one
# WORKERS_SIZE-byte message (default 1024) outstanding on each. echo_load
# sleeps in epoll_wait (no -b): with 2 workers, worker 1 shares CPU 1 with it,
# and a spinning generator would starve that worker. On this 2-CPU machine the
# 2-worker figures are therefore those of two workers and a load generator on
# two cores: what they show is the server's CPU time per request and that both
# workers take connections and requests, not a speed-up.
#
# Per run: a 1 s warm-up, then a scrape of GET /metrics on the admin listener
# and of the server's CPU times, the measured run, and the same samples again.
# Reported, as the median of WORKERS_RUNS runs (default 3, each configuration
# once per round): requests/s, the round-trip p50 and p99, the server's CPU
# time (utime + stime of every thread, from /proc) per request, also as a
# ratio to 1 worker with the same balance, the requests per event loop
# iteration (coreio_loop_iterations_total, all workers: how many requests a
# wake-up serves), and per worker: the connections it
# accepted (coreio_listener_connections_accepted_total), its share of the
# requests (coreio_bytes_in_total / WORKERS_SIZE) and its thread's CPU use.
#
# Environment: WORKERS_SECONDS (measured seconds per run, default 5),
# WORKERS_RUNS, WORKERS_CONNS, WORKERS_SIZE, ECHO_LOAD_BIN (else echo_load is
# built with ${CC:-cc} -O2 into a temporary directory), top_srcdir (default:
# this script's ".."). Needs taskset and curl (without curl, the per-worker
# columns are "-"). The exit status is 1 if a server or a run failed.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
secs=${WORKERS_SECONDS:-5}
runs=${WORKERS_RUNS:-3}
conns=${WORKERS_CONNS:-32}
size=${WORKERS_SIZE:-1024}
load_cpu=1
srv_cpu=0,1 # the process; coreiod pins each worker to its own core
cc=${CC:-cc}
begin_run workers_run.sh

warn() {
    echo "workers_run.sh: $*" >&2
}

# utime + stime ticks of each worker thread of the coreiod under the server
# (the thread whose affinity is exactly its core), in the order of $cores.
worker_ticks() {
    d=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v parent="$srv_pid" '
        { pid = $1; sub(/.*\) /, ""); if ($2 == parent) { print pid; exit } }')
    for t in /proc/"$d"/task/[0-9]*; do
        printf '%s %s\n' "$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status")" \
            "$(sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }')"
    done 2>/dev/null | awk -v cores="$cores" '
    { ticks[$1] = $2 }
    END { n = split(cores, c, ","); for (i = 1; i <= n; i++) printf "%s ", ticks[c[i]] + 0 }'
}

# The admin listener's metrics into file $1 (empty if curl fails or is missing).
scrape() {
    if [ -n "$curl" ]; then
        curl -s --max-time 5 "http://127.0.0.1:$aport/metrics" >"$1" || : >"$1"
    else
        : >"$1"
    fi
}

# "v0 v1 ..." per worker: metric $1 (a Prometheus line prefix up to worker=")
# in scrape $3 minus scrape $2.
metric_diff() {
    awk -v m="$1" -v n="$workers" '
    FNR == 1 { f++ }
    index($0, m) == 1 { w = substr($0, length(m) + 1); sub(/".*/, "", w); v[f, w] = $2 }
    END {
        for (i = 0; i < n; i++) printf "%s ", (((2, i) in v) ? v[2, i] - v[1, i] : "-")
    }' "$2" "$3"
}

# Run echo_load pinned to the load CPU for $1 seconds, output to file $2.
load() {
    taskset -c "$load_cpu" "$load_bin" -p "$port" -c "$conns" -s "$size" -d "$1" -w 0 \
        </dev/null >"$2" 2>"$tmp/load.err" &
    wait_load "$name: echo_load"
}

# One result line: balance, workers, rps, p50, p99, CPU us/request, requests
# per loop iteration, then per worker "connections/request share %/CPU %"
# joined by spaces.
result() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$balance" "$workers" "$@" >>"$tmp/results"
}

# One measured run on the running server.
measure() {
    if ! load 1 /dev/null; then
        result error - - - - -
        failed=1
        return
    fi
    scrape "$tmp/m0"
    s0=$(cpus_busy "$srv_cpu")
    w0=$(worker_ticks)
    t0=$(cpu_ticks "$srv_pid")
    times >"$tmp/times.0"
    if ! load "$secs" "$tmp/load.json"; then
        result error - - - - -
        failed=1
        return
    fi
    times >"$tmp/times.1"
    t1=$(cpu_ticks "$srv_pid")
    w1=$(worker_ticks)
    s1=$(cpus_busy "$srv_cpu")
    scrape "$tmp/m1"
    c=$(($(child_ticks "$tmp/times.1") - $(child_ticks "$tmp/times.0")))
    check_quiet_cpus "workers_run.sh: $name" "$s0" "$s1" "$srv_cpu" "$secs" $((t1 - t0 + c))
    req=$(json_get requests "$tmp/load.json")
    cpu=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$req" \
        'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    acc=$(metric_diff 'coreio_listener_connections_accepted_total{listener="bench",worker="' \
        "$tmp/m0" "$tmp/m1")
    bin=$(metric_diff 'coreio_bytes_in_total{worker="' "$tmp/m0" "$tmp/m1")
    rpi=$(metric_diff 'coreio_loop_iterations_total{worker="' "$tmp/m0" "$tmp/m1" |
        awk -v n="$req" '{ for (i = 1; i <= NF; i++) it += $i }
            END { if (it > 0) printf "%.2f", n / it; else print "-" }')
    per=$(awk -v acc="$acc" -v bin="$bin" -v a="$w0" -v b="$w1" -v hz="$hz" -v secs="$secs" '
    BEGIN {
        n = split(acc, c, " "); split(bin, by, " "); split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) total += by[i]
        for (i = 1; i <= n; i++)
            printf("%s%s/%s/%.0f", (i > 1 ? " " : ""), c[i],
                (by[i] == "-" || total <= 0 ? "-" : sprintf("%.0f", 100 * by[i] / total)),
                100 * (y[i] - x[i]) / hz / secs)
    }')
    result "$(json_get rps "$tmp/load.json")" "$(json_get p50_us "$tmp/load.json")" \
        "$(json_get p99_us "$tmp/load.json")" "$cpu" "$rpi" "$per"
}

# Medians over the runs, one line per configuration in the order they ran:
# balance, workers, rps, p50, p99, CPU, requests per iteration, then the
# per-worker triples.
medians() {
    cut -f 1,2 "$tmp/results" | awk '!seen[$0]++' | while IFS='	' read -r b w; do
        line="$b	$w"
        for col in 3 4 5 6 7; do
            v=$(awk -F'\t' -v b="$b" -v w="$w" -v c="$col" '$1 == b && $2 == w { print $c }' \
                "$tmp/results" | median)
            line="$line	$v"
        done
        per=
        i=1
        while [ "$i" -le "$w" ]; do
            cell=
            for k in 1 2 3; do
                v=$(awk -F'\t' -v b="$b" -v w="$w" -v i="$i" -v k="$k" '
                    $1 == b && $2 == w { split($8, p, " "); split(p[i], f, "/"); print f[k] }' \
                    "$tmp/results" | median)
                cell=$cell${cell:+/}$v
            done
            per=$per${per:+ }$cell
            i=$((i + 1))
        done
        printf '%s\t%s\n' "$line" "$per"
    done
}

table() {
    awk -F'\t' '
    function join(s, k,    n, p, f, i, out) {
        n = split(s, p, " ")
        for (i = 1; i <= n; i++) { split(p[i], f, "/"); out = out (i > 1 ? " / " : "") f[k] }
        return out
    }
    {
        if ($2 == 1 && $6 + 0 > 0) one[$1] = $6
        rows[NR] = $0
    }
    END {
        print "| balance | workers | requests/s | p50 us | p99 us | server CPU us/request " \
            "| CPU/request vs 1 worker | requests per loop iteration | connections per worker " \
            "| requests per worker % | CPU per worker % |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
        for (r = 1; r <= NR; r++) {
            split(rows[r], f, "\t")
            ratio = f[6] + 0 > 0 && one[f[1]] > 0 ? sprintf("%.2f", f[6] / one[f[1]]) : "-"
            rps = f[3] == "-" ? "error" : sprintf("%.0f", f[3])
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], rps,
                f[4], f[5], f[6], ratio, f[7], join(f[8], 1), join(f[8], 2), join(f[8], 3)
        }
    }'
}

# ---- check and build the tools -----------------------------------------------
[ $# -eq 1 ] || die "usage: sh workers_run.sh COREIOD"
coreiod=$1
[ -x "$coreiod" ] || die "$coreiod is not built"
awk -v s="$secs" -v r="$runs" 'BEGIN { exit !(s + 0 > 0 && r ~ /^[1-9][0-9]*$/) }' ||
    die "WORKERS_SECONDS must be a positive number and WORKERS_RUNS a positive integer"
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$srv_cpu" true 2>/dev/null || die "needs CPUs 0 and 1"
curl=$(command -v curl || :)
[ -n "$curl" ] || warn "curl not found (Debian: curl): no per-worker counts"
hz=$(getconf CLK_TCK)
load_bin=${ECHO_LOAD_BIN:-$tmp/echo_load}
if [ -z "${ECHO_LOAD_BIN:-}" ]; then
    $cc -O2 -std=gnu11 -o "$load_bin" "$top/bench/echo_load.c" || die "cannot build echo_load"
fi

# ---- the runs ------------------------------------------------------------------
: >"$tmp/results"
rep=1
while [ $rep -le "$runs" ]; do
    for balance in reuseport handoff; do
        for workers in 1 2; do
            name="$balance, $workers worker(s), run $rep"
            cores=0
            [ "$workers" -eq 1 ] || cores=0,1
            port=$(free_port) || die "no free TCP port in 20000..29999"
            aport=$(free_port "$port") || die "no free TCP port in 20000..29999"
            cmd="env COREIOD_WORKERS=$workers COREIOD_CORES=$cores COREIOD_BALANCE=$balance"
            cmd="$cmd COREIOD_ADMIN=127.0.0.1:$aport sh $(quote "$top/bench/coreiod_echo.sh")"
            cmd="$cmd $(quote "$coreiod") $port echo"
            if start_server "$cmd"; then
                measure
            else
                warn "$name: exited or printed no \"listening\" within 10 s"
                result error - - - - -
                failed=1
            fi
            stop_server
        done
    done
    rep=$((rep + 1))
done

echo "## coreiod echo: 1 vs 2 workers ($(date -u +%Y-%m-%d), $(nproc) CPUs," \
    "Linux $(uname -r), median of $runs runs of ${secs} s, $conns conns x $size B," \
    "echo_load on CPU $load_cpu)"
echo
medians | table
exit $failed
