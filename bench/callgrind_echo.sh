#!/bin/sh
# bench/callgrind_echo.sh: user-space instructions per 1 KiB TCP echo request,
# counted by callgrind, for coreio and the event loops it is compared with.
#
#     sh bench/callgrind_echo.sh [BUILDDIR] [NAME=COMMAND ...]
#
# Unlike the timings of bench/echo_run.sh, an instruction count does not move
# with what else runs on the machine, so this is the hot-path figure to
# compare across commits. Each server runs under
#     valgrind --tool=callgrind
# pinned to CPU ECHO_SERVER_CPU (default 0), and bench/echo_load (built from
# bench/echo_load.c) drives it from CPU ECHO_LOAD_CPU (default 1) with 1 KiB
# messages, one outstanding per connection, every byte checked. After an
# unmeasured 1 s warm-up (10 connections), for each connection count of
# CG_CONNS (default "1 10"):
#     callgrind_control -z PID        counters to zero
#     echo_load -d 1 ...              R1 requests
#     callgrind_control -d PID        dump: I1 instructions (and zero again)
#     echo_load -d CG_SECONDS ...     R2 requests (CG_SECONDS default 3)
#     callgrind_control -d PID        dump: I2 instructions
# and reports (I2 - I1) / (R2 - R1): the cost of connecting, closing and
# going idle is the same in both runs and cancels out. With 1 connection
# every request is a full loop iteration (one readiness event per wake-up),
# so the figure is exact to a few instructions; it is the one to compare
# across commits. With 10 connections one wake-up serves several requests, as in
# echo_run.sh; the server under callgrind is far slower than echo_load, so
# on a quiet machine it nearly always finds all 10 ready and the figure moves
# by up to 3 %, but when other jobs take the CPUs the batches change and it
# moves by 20 % (a warning says so when the load average exceeds the CPUs).
#
# The servers, in this order: "libevent" (bench/echo_libevent, the reference:
# plain event_new read events on the library coreio is built on), "libuv"
# (bench/echo_libuv.c built with ${CC:-cc} -O2 -luv; skipped with a message
# if libuv1-dev is missing), "coreio" (bench/echo_coreio), then one per
# NAME=COMMAND argument: COMMAND is the server program itself (not a wrapper
# script: callgrind counts the process it starts), run with each {PORT}
# replaced. Programs of BUILDDIR (default .) are run through its libtool, so
# that the uninstalled libcoreio is the one measured. A server must go on
# waiting when its poll fails with EINTR: vgdb interrupts the system call to
# run callgrind_control's command (bench/echo_epoll.c takes that for SIGTERM
# and exits, so it is not among them).
#
# Environment: CG_CONNS, CG_SECONDS, CG_KEEP (a directory to copy the
# callgrind dumps into, NAME.1 to NAME.2N, for callgrind_annotate: the even
# ones are the longer runs), ECHO_SERVER_CPU, ECHO_LOAD_CPU,
# ECHO_LOAD_BIN, ECHO_LIBUV_BIN (as in echo_run.sh),
# top_srcdir (default: this script's ".."). Needs valgrind (callgrind_control
# talks to the server through vgdb, which uses ptrace). Prints a Markdown
# table; the exit status is 1 if any server or run failed. About a minute.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
b=.
case ${1:-} in
*=*) ;;
?*)
    b=$1
    shift
    ;;
esac
conns_list=${CG_CONNS:-1 10}
secs=${CG_SECONDS:-3}
srv_cpu=${ECHO_SERVER_CPU:-0}
load_cpu=${ECHO_LOAD_CPU:-1}
cc=${CC:-cc}
busy_multi=
begin_run callgrind_echo.sh

warn() {
    echo "callgrind_echo.sh: $*" >&2
}

# Run echo_load pinned to the load CPU: $1 connections, $2 seconds; sets reqs
# to the requests it completed. In the background, so that a signal is handled.
load() {
    taskset -c "$load_cpu" "$load_bin" -p "$port" -c "$1" -s 1024 -d "$2" -w 0 \
        </dev/null >"$tmp/load.json" 2>"$tmp/load.err" &
    wait_load "$name, $1 connections: echo_load" || return 1
    reqs=$(json_get requests "$tmp/load.json")
}

# Send callgrind command $1 (-z or -d) to the server. Through vgdb, whose
# FIFOs are in the server's TMPDIR (start_server sets it to $tmp); it prints
# "OK." once the command ran, and exits with 0 even when it found no server.
control() {
    TMPDIR=$tmp callgrind_control "$1" "$srv_pid" >"$tmp/control.out" 2>&1 || :
    if ! grep -q 'OK\.' "$tmp/control.out"; then
        warn "$name: callgrind_control $1 failed:"
        sed 's/^/  /' "$tmp/control.out" >&2
        return 1
    fi
}

# Dump the counters; set instr to the instructions since they were last
# zeroed: the "summary:" line of the next numbered file callgrind writes.
dump() {
    control -d || return 1
    dumps=$((dumps + 1))
    f=$tmp/cg.$name.$dumps
    i=0
    until grep -q '^totals:' "$f" 2>/dev/null; do
        if [ $i -ge 100 ]; then
            warn "$name: no callgrind dump in $f"
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    instr=$(sed -n 's/^summary: *//p' "$f")
}

# Instructions per request with $1 connections, into the results.
measure() {
    control -z || return 1
    load "$1" 1 || return 1
    r1=$reqs
    dump || return 1
    i1=$instr
    load "$1" "$secs" || return 1
    r2=$reqs
    dump || return 1
    i2=$instr
    if [ "$r2" -le "$r1" ]; then
        warn "$name, $1 connections: the ${secs} s run completed $r2 requests, the 1 s run $r1:" \
            "the machine is too busy"
        return 1
    fi
    awk -v n="$name" -v c="$1" -v i1="$i1" -v i2="$i2" -v r1="$r1" -v r2="$r2" 'BEGIN {
        printf "%s\t%s\t%.0f\n", n, c, (i2 - i1) / (r2 - r1)
    }' >>"$tmp/results"
    # With several connections the figure depends on how many are ready per wake-up.
    if [ "$1" -gt 1 ] && awk -v n="$(nproc)" '{ exit !($1 > n) }' /proc/loadavg; then
        busy_multi=1
    fi
}

# One server under callgrind: $1 is its command with {PORT}.
run_server() {
    port=$(free_port) || die "no free TCP port in 20000..29999"
    vg="valgrind --tool=callgrind --compress-strings=no --log-file=$(quote "$tmp/vg.$name.log")"
    vg="$vg --callgrind-out-file=$(quote "$tmp/cg.$name")"
    dumps=0
    if ! start_server "$libtool $vg $(subst_port "$1" "$port")" 60; then
        warn "$name: exited or printed no \"listening\" within 60 s under callgrind: $1"
        sed 's/^/  /' "$tmp/vg.$name.log" >&2 2>/dev/null || :
        failed=1
        stop_server 30
        return
    fi
    if load 10 1; then
        for c in $conns_list; do
            measure "$c" || failed=1
        done
    else
        failed=1
    fi
    stop_server 30
    if [ -n "${CG_KEEP:-}" ]; then
        mkdir -p "$CG_KEEP" && for f in "$tmp/cg.$name".*; do
            [ ! -e "$f" ] || cp "$f" "$CG_KEEP/${f#"$tmp/cg."}"
        done
    fi
}

# The Markdown table: one row per server, a column pair per connection count.
table() {
    awk -F'\t' -v conns="$conns_list" -v order="$order" '
    { v[$1 "," $2] = $3 }
    END {
        nc = split(conns, c, " "); ns = split(order, s, " ")
        head = "| server |"; rule = "|---|"
        for (j = 1; j <= nc; j++) {
            head = head sprintf(" instructions/request, %s conn%s | vs libevent |", c[j],
                c[j] == 1 ? "" : "s")
            rule = rule "---:|---:|"
        }
        print head; print rule
        for (i = 1; i <= ns; i++) {
            line = "| " s[i] " |"
            for (j = 1; j <= nc; j++) {
                x = v[s[i] "," c[j]]; ref = v["libevent," c[j]]
                line = line " " (x == "" ? "error" : x) " | " \
                    (x == "" || ref == "" ? "-" : sprintf("%.2f", x / ref)) " |"
            }
            print line
        }
    }' "$tmp/results"
}

# ---- check and build the tools ------------------------------------------------
for c in $conns_list; do
    case $c in
    '' | *[!0-9]* | 0) die "CG_CONNS must be connection counts above 0, not \"$conns_list\"" ;;
    esac
done
awk -v s="$secs" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 1) }' ||
    die "CG_SECONDS must be a number of seconds above 1, not \"$secs\""
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
    die "valgrind and callgrind_control not found (Debian: valgrind)"
fi
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$srv_cpu" true 2>/dev/null || die "cannot pin to CPU $srv_cpu (ECHO_SERVER_CPU)"
taskset -c "$load_cpu" true 2>/dev/null || die "cannot pin to CPU $load_cpu (ECHO_LOAD_CPU)"
libtool=
if [ -x "$b/libtool" ]; then
    libtool="$(quote "$b/libtool") --mode=execute"
fi
if grep -q '^CIO_SAN_CFLAGS = .*-fsanitize' "$b/Makefile" 2>/dev/null; then
    warn "$b is built with sanitizers: its instruction counts are not coreio's"
fi
build_echo_load
build_echo_libuv

# ---- the servers -------------------------------------------------------------------
for spec in "$@"; do
    case $spec in
    *=*'{PORT}'*) ;;
    *) die "not NAME=COMMAND with {PORT} in COMMAND: $spec" ;;
    esac
done
set -- "coreio=$(quote "$b/bench/echo_coreio") {PORT}" "$@"
if [ -n "$libuv_bin" ]; then
    set -- "libuv=$(quote "$libuv_bin") {PORT}" "$@"
fi
set -- "libevent=$(quote "$b/bench/echo_libevent") {PORT}" "$@"

: >"$tmp/results"
order=
for spec in "$@"; do
    name=${spec%%=*}
    case " $order " in
    *" $name "*) die "server name used twice: $name" ;;
    esac
    order="$order $name"
    run_server "${spec#*=}"
done

if [ -n "$busy_multi" ]; then
    warn "the load average was above the CPU count: the figures with several connections" \
        "depend on how many are ready per wake-up and are suspect (1 connection is exact)"
fi
echo "## Instructions per 1 KiB TCP echo request under callgrind ($(date -u +%Y-%m-%d)," \
    "$(valgrind --version), Linux $(uname -r), ${secs} s minus 1 s of load per figure)"
echo
table
exit $failed
