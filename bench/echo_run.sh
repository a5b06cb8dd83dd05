#!/bin/sh
# bench/echo_run.sh: TCP echo benchmark over loopback.
#
#     sh bench/echo_run.sh [NAME=COMMAND ...]
#
# Runs each echo server pinned to CPU 0 and bench/echo_load (closed loop, one
# message outstanding per connection) pinned to CPU 1, for two workloads:
# 10 connections x 1 KiB and 10 connections x 100 KiB messages. Prints a
# Markdown table with the throughput, the round-trip latency and the server's
# CPU time (utime + stime from /proc/PID/stat) per request, also as a ratio to
# the raw epoll server's: the CPU-per-request floor (bench/echo_epoll.c).
#
# Servers: "epoll" (bench/echo_epoll.c), "asyncio" and "uvloop"
# (bench/echo_py.py), "libuv" (bench/echo_libuv.c, skipped if it does not build
# with -luv), then one per NAME=COMMAND argument, where COMMAND is run by sh
# with each {PORT} replaced by the port, for example
#     coreio="./bench/echo_coreio {PORT}"
#     coreiod="sh bench/coreiod_echo.sh ./tools/coreiod {PORT}"
# A server must listen on 127.0.0.1:PORT, print a line containing "listening"
# on stdout once it accepts connections, and exit on SIGTERM. It runs in its
# own process group; its CPU time includes that of its live descendants.
#
# Environment: ECHO_SECONDS (measured seconds per workload, default 5),
# ECHO_BUSY_POLL (1, the default: echo_load -b, it spins on its own CPU rather
# than sleeping, so the server sets the pace; 0: it sleeps in epoll_wait),
# ECHO_EPOLL_BIN, ECHO_LIBUV_BIN and ECHO_LOAD_BIN (use these binaries instead
# of building them with ${CC:-cc} -O2 into a temporary directory),
# ECHO_SERVER_CPU and ECHO_LOAD_CPU (default 0 and 1), top_srcdir (default:
# this script's "..").
#
# Per server and workload: a 1 s warm-up run of echo_load, then a sample of
# the server's CPU time, the measured run (echo_load -w 0 -d ECHO_SECONDS),
# another sample. A warning goes to stderr when other processes or the
# hypervisor (steal) took more than 5% of either CPU in that window, as
# the figures are then suspect. The exit status is 1 if any server or run failed.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
py=/usr/bin/python3
secs=${ECHO_SECONDS:-5}
srv_cpu=${ECHO_SERVER_CPU:-0}
load_cpu=${ECHO_LOAD_CPU:-1}
busy=
if [ "${ECHO_BUSY_POLL:-1}" != 0 ]; then
    busy=-b
fi
cc=${CC:-cc}
workloads="1024 102400" # message sizes; each with 10 connections
conns=10
begin_run echo_run.sh

warn() {
    echo "echo_run.sh: $*" >&2
}

# "busy steal" for the server's CPU, then for the load generator's: clock
# ticks spent in user, system, irq and softirq mode (any process: a task's
# utime + stime includes the softirq work done in its context, such as
# loopback's receive path) and stolen by the hypervisor, from /proc/stat.
cpu_stat() {
    awk -v s="cpu$srv_cpu" -v l="cpu$load_cpu" '
    $1 == s { srv = $2 + $3 + $4 + $7 + $8 " " $9 }
    $1 == l { load = $2 + $3 + $4 + $7 + $8 " " $9 }
    END { print srv, load }' /proc/stat
}

# Warn if, between cpu_stat samples $1 and $2, more than 5% of the time of
# either CPU went to the hypervisor or to processes other than the server
# ($3 ticks) on the server's CPU, or the load generator ($4 ticks) on its own.
check_quiet() {
    awk -v a="$1" -v b="$2" -v srv="$3" -v load="$4" -v hz="$hz" -v secs="$secs" \
        -v what="$name, $size-byte messages" -v cpus="$srv_cpu $load_cpu" '
    BEGIN {
        split(a, x, " "); split(b, y, " "); split(cpus, cpu, " ")
        t = hz * secs
        own[1] = srv; own[3] = load
        for (i = 1; i <= 3; i += 2) {
            other = (y[i] - x[i] - own[i]) / t; steal = (y[i + 1] - x[i + 1]) / t
            if (other < 0) other = 0 # with steal, task times run ahead of /proc/stat
            if (other > 0.05 || steal > 0.05)
                printf "echo_run.sh: %s: CPU %s spent %.0f%% on other processes and " \
                    "%.0f%% stolen by the hypervisor; figures suspect\n", what,
                    cpu[(i + 1) / 2], 100 * other, 100 * steal > "/dev/stderr"
        }
    }'
}

# Run echo_load pinned to the load CPU: $1 message size, $2 seconds, output to
# file $3. In the background, so that a signal to this script is handled at once.
load() {
    taskset -c "$load_cpu" "$load_bin" -p "$port" -c "$conns" -s "$1" -d "$2" -w 0 $busy \
        </dev/null >"$3" 2>"$tmp/load.err" &
    wait_load "$name, $1-byte messages: echo_load"
}

# One result line: size, server, rps, p50, p99, CPU us per request ("-" if unknown).
result() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$name" "$2" "$3" "$4" "$5" >>"$tmp/results"
}

# Both workloads on the running server.
measure() {
    for size in $workloads; do
        if ! load "$size" 1 /dev/null; then
            result "$size" error - - -
            failed=1
            continue
        fi
        s0=$(cpu_stat)
        t0=$(cpu_ticks "$srv_pid")
        times >"$tmp/times.0"
        if ! load "$size" "$secs" "$tmp/load.json"; then
            result "$size" error - - -
            failed=1
            continue
        fi
        times >"$tmp/times.1"
        t1=$(cpu_ticks "$srv_pid")
        c=$(($(child_ticks "$tmp/times.1") - $(child_ticks "$tmp/times.0")))
        check_quiet "$s0" "$(cpu_stat)" "$((t1 - t0))" "$c"
        req=$(json_get requests "$tmp/load.json")
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$req" \
            'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        result "$size" "$(json_get rps "$tmp/load.json")" "$(json_get p50_us "$tmp/load.json")" \
            "$(json_get p99_us "$tmp/load.json")" "$cpu"
    done
}

# The Markdown table, workloads in order, servers in the order they ran.
table() {
    awk -F'\t' -v conns="$conns" '
    function label(size) {
        return conns " conns x " (size % 1024 == 0 ? size / 1024 " KiB" : size " B")
    }
    {
        row[NR] = $0; size[NR] = $1
        if ($2 == "epoll" && $6 != "-") epoll[$1] = $6
        if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 }
    }
    END {
        print "| workload | server | requests/s | p50 us | p99 us | server CPU us/request " \
            "| CPU/request vs epoll |"
        print "|---|---|---:|---:|---:|---:|---:|"
        for (i = 0; i < n; i++)
            for (r = 1; r <= NR; r++) {
                if (size[r] != order[i]) continue
                split(row[r], f, "\t")
                rps = f[3] == "error" ? "error" : sprintf("%.0f", f[3])
                ratio = "-"
                if (f[6] != "-" && epoll[f[1]] > 0) ratio = sprintf("%.2f", f[6] / epoll[f[1]])
                printf "| %s | %s | %s | %s | %s | %s | %s |\n", label(f[1]), f[2], rps, f[4],
                    f[5], f[6], ratio
            }
    }' "$tmp/results"
}

# ---- build and check the tools -----------------------------------------------
awk -v s="$secs" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0) }' ||
    die "ECHO_SECONDS must be a positive number of seconds, not \"$secs\""
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$srv_cpu" true 2>/dev/null || die "cannot pin to CPU $srv_cpu (ECHO_SERVER_CPU)"
taskset -c "$load_cpu" true 2>/dev/null || die "cannot pin to CPU $load_cpu (ECHO_LOAD_CPU)"
hz=$(getconf CLK_TCK)
build_echo_load
epoll_bin=${ECHO_EPOLL_BIN:-$tmp/echo_epoll}
if [ -z "${ECHO_EPOLL_BIN:-}" ]; then
    $cc -O2 -std=gnu11 -o "$epoll_bin" "$top/bench/echo_epoll.c" || die "cannot build echo_epoll"
fi
build_echo_libuv

# ---- the servers: built-in ones first, so "epoll" is the reference ------------
for spec in "$@"; do
    case $spec in
    *=*'{PORT}'*) ;;
    *) die "not NAME=COMMAND with {PORT} in COMMAND: $spec" ;;
    esac
done
if [ -n "$libuv_bin" ]; then
    set -- "libuv=$(quote "$libuv_bin") {PORT}" "$@"
fi
pyserver="$(quote "$py") $(quote "$top/bench/echo_py.py")"
for impl in uvloop asyncio; do
    if [ -x "$py" ] && "$py" -c "import $impl" 2>/dev/null; then
        set -- "$impl=$pyserver --loop $impl {PORT}" "$@"
    else
        warn "skipped $impl: $py cannot import it (Debian: python3, python3-uvloop)"
    fi
done
set -- "epoll=$(quote "$epoll_bin") {PORT}" "$@"

: >"$tmp/results"
names=" "
for spec in "$@"; do
    name=${spec%%=*}
    cmd=${spec#*=}
    case $names in
    *" $name "*) die "server name used twice: $name" ;;
    esac
    names="$names$name "
    port=$(free_port) || die "no free TCP port in 20000..29999"
    cmd=$(subst_port "$cmd" "$port")
    if start_server "$cmd"; then
        measure
    else
        warn "$name: exited or printed no \"listening\" within 10 s: $cmd"
        for size in $workloads; do
            result "$size" error - - -
        done
        failed=1
    fi
    stop_server
done

echo "## TCP echo over loopback ($(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r)," \
    "${secs} s per run, server on CPU $srv_cpu, echo_load ${busy:+-b }on CPU $load_cpu)"
echo
table
exit $failed
