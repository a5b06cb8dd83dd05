#!/bin/sh
# bench/udp_run.sh: UDP echo benchmark over loopback.
#
#     sh bench/udp_run.sh COREIO_BENCH NAME=COMMAND ...
#
# Runs each UDP echo server pinned to CPU 0 and COREIO_BENCH (tools/coreio-bench
# --mode udp: closed loop, 64-byte datagrams, each endpoint keeping DEPTH in
# flight) pinned to CPU 1, for two workloads:
#   - 1 endpoint x depth 1: a ping-pong, one datagram waiting at a time;
#   - 16 endpoints x depth 8: up to 128 datagrams waiting together.
# Prints a Markdown table with the datagrams echoed per second, the median
# and 99th percentile round trip and the server's CPU time (utime + stime) per
# datagram, also as a ratio to uvloop's.
#
# Servers: "uvloop" and "asyncio" (bench/echo_py.py --udp), then one per
# NAME=COMMAND argument, where COMMAND is run by sh with each {PORT} replaced
# by the port, for example coreio="./bench/echo_coreio --udp {PORT}". A server
# must take datagrams on 127.0.0.1:PORT, print a line containing "listening"
# once it does, and exit on SIGTERM.
#
# Environment: UDP_SECONDS (measured seconds per workload, default 5),
# UDP_SERVER_CPU and UDP_LOAD_CPU (default 0 and 1), top_srcdir (default:
# this script's ".."). Each measured run follows a 1 s warm-up run. The exit
# status is 1 if any server or run failed.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
py=/usr/bin/python3
secs=${UDP_SECONDS:-5}
srv_cpu=${UDP_SERVER_CPU:-0}
load_cpu=${UDP_LOAD_CPU:-1}
workloads="1x1 16x8" # endpoints x depth
begin_run udp_run.sh

warn() {
    echo "udp_run.sh: $*" >&2
}

[ $# -ge 1 ] || die "usage: udp_run.sh COREIO_BENCH [NAME=COMMAND ...]"
bench=$1
shift
[ -x "$bench" ] || die "not an executable: $bench"
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
hz=$(getconf CLK_TCK)

# Run coreio-bench pinned to the load CPU: $1 workload, $2 duration, JSON to file $3.
load() {
    taskset -c "$load_cpu" "$bench" --mode udp --json -c "${1%x*}" -p "${1#*x}" -d "$2" \
        127.0.0.1 "$port" </dev/null >"$3" 2>"$tmp/load.err" &
    wait_load "$name, $1: coreio-bench"
}

# One result line: workload, server, datagrams/s, p50, p99, CPU us per datagram.
result() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$name" "$2" "$3" "$4" "$5" >>"$tmp/results"
}

measure() {
    for w in $workloads; do
        if ! load "$w" 1 /dev/null || ! {
            t0=$(cpu_ticks "$srv_pid")
            load "$w" "$secs" "$tmp/load.json"
        }; then
            result "$w" error - - -
            failed=1
            continue
        fi
        t1=$(cpu_ticks "$srv_pid")
        n=$(json_get requests "$tmp/load.json")
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        result "$w" "$(json_get requests_per_s "$tmp/load.json")" \
            "$(json_get p50 "$tmp/load.json")" "$(json_get p99 "$tmp/load.json")" "$cpu"
    done
}

table() {
    awk -F'\t' '
    {
        row[NR] = $0; w[NR] = $1
        if ($2 == "uvloop" && $6 != "-") ref[$1] = $6
        if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 }
    }
    END {
        print "| workload | server | datagrams/s | p50 us | p99 us | server CPU us/datagram " \
            "| CPU/datagram vs uvloop |"
        print "|---|---|---:|---:|---:|---:|---:|"
        for (i = 0; i < n; i++)
            for (r = 1; r <= NR; r++) {
                if (w[r] != order[i]) continue
                split(row[r], f, "\t")
                split(f[1], e, "x")
                rate = f[3] == "error" ? "error" : sprintf("%.0f", f[3])
                ratio = "-"
                if (f[6] != "-" && ref[f[1]] > 0) ratio = sprintf("%.2f", f[6] / ref[f[1]])
                printf "| %s endpoint%s x depth %s | %s | %s | %s | %s | %s | %s |\n", e[1],
                    e[1] == 1 ? "" : "s", e[2], f[2], rate, f[4], f[5], f[6], ratio
            }
    }' "$tmp/results"
}

pyserver="$(quote "$py") $(quote "$top/bench/echo_py.py")"
for impl in asyncio uvloop; do
    if [ -x "$py" ] && "$py" -c "import $impl" 2>/dev/null; then
        set -- "$impl=$pyserver --loop $impl --udp {PORT}" "$@"
    else
        warn "skipped $impl: $py cannot import it (Debian: python3, python3-uvloop)"
    fi
done

: >"$tmp/results"
for spec in "$@"; do
    case $spec in
    *=*'{PORT}'*) ;;
    *) die "not NAME=COMMAND with {PORT} in COMMAND: $spec" ;;
    esac
    name=${spec%%=*}
    port=$(free_port) || die "no free port in 20000..29999"
    if start_server "$(subst_port "${spec#*=}" "$port")"; then
        measure
    else
        warn "$name: exited or printed no \"listening\" within 10 s"
        for w in $workloads; do
            result "$w" error - - -
        done
        failed=1
    fi
    stop_server
done

echo "## UDP echo over loopback ($(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r)," \
    "${secs} s per run, server on CPU $srv_cpu, coreio-bench on CPU $load_cpu, 64-byte datagrams)"
echo
table
exit $failed
