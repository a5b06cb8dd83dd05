#!/bin/sh
# bench/soak.sh: run coreiod for a long while under mixed load with periodic
# reloads, and record whether its memory, descriptors and loop lag stay flat.
#
#     sh bench/soak.sh [SECONDS]          (from a build directory)
#
# SECONDS (or SOAK_SECONDS; default 1800) of load on every built-in service of
# tools/coreiod, all on loopback, two workers:
#   echo over TCP      tools/coreio-bench --mode echo, 4 connections x 1 KiB
#   echo over UDP      tools/coreio-bench --mode udp, 2 endpoints x 256 bytes
#   http-hello         wrk -t1 -c8 (coreio-bench --mode http if wrk is missing)
#   echo over Unix,    bench/soak_load.py: paced Python clients (2 Unix echo
#   discard over TCP,  connections, 2 discard connections, GET /metrics twice
#   admin /metrics     a second)
# Every SOAK_RELOAD seconds (default 60) the file is swapped and coreiod gets
# SIGHUP: the two files differ in a non-socket setting (idle_timeout of the
# TCP echo listener, 60s or 45s) and in the port of one more echo listener,
# "moving", which must then answer on its new port and refuse on its old one.
# Every SOAK_INTERVAL seconds (default 10) a row goes into soak.tsv:
#   seconds    since the load started
#   rss_kib    coreiod's VmRSS (/proc/PID/status)
#   fds        its open descriptors (/proc/PID/fd)
#   lag_s      coreio_loop_lag_seconds from /metrics, the worst worker's
#   lag_max_s  coreio_loop_lag_max_seconds, the worst worker's (since start)
#   transports coreio_transports summed over workers (connections, endpoints)
#   reloads    SIGHUP reloads done so far
# and one last row once the load has stopped. gnuplot then draws soak.png
# (three panels: RSS, descriptors, loop lag; dashed lines at the reloads).
#
# Output, in SOAK_OUT (default ./soak): soak.tsv, soak.png, reloads.tsv,
# coreiod.log, a.ini and b.ini, load-NAME.out and load-NAME.err. Environment:
# SOAK_BUILDDIR (default .), COREIOD and COREIO_BENCH (default the build
# directory's tools/coreiod and tools/coreio-bench), top_srcdir (default:
# this script's "..").
#
# Exit status 1 if coreiod dies, a reload is not logged as done or the moving
# listener does not follow it, a load generator fails or reports failed
# requests (errors, over 1 in 100,000 UDP datagrams lost, wrk socket errors or
# non-2xx answers),
# descriptors stay above the count before the load once it has stopped, or
# coreiod does not exit with status 0 within 15 s of SIGTERM at the end.
# Everything stops by itself: the load generators after SECONDS, and on any
# exit this script kills what it started that is still running.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
secs=${1:-${SOAK_SECONDS:-1800}}
b=${SOAK_BUILDDIR:-.}
coreiod=${COREIOD:-$b/tools/coreiod}
cbench=${COREIO_BENCH:-$b/tools/coreio-bench}
out=${SOAK_OUT:-soak}
interval=${SOAK_INTERVAL:-10}
reload_every=${SOAK_RELOAD:-60}
py=/usr/bin/python3
helper=$top/bench/soak_load.py
failed=0
cpid=
gens=

warn() {
    echo "soak.sh: $*" >&2
}

die() {
    warn "$*"
    exit 1
}

bad() {
    warn "FAIL: $*"
    failed=1
}

cleanup() {
    for p in $gens $cpid; do
        kill -KILL "$p" 2>/dev/null || :
    done
    rm -rf "$tmp"
}

# $1 distinct TCP and UDP ports in 20000..29999 that no socket uses now.
pick_ports() {
    cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | awk -v n="$1" \
        -v start=$((20000 + $$ % 10000)) '
    function hex(s,    i, v) {
        for (i = 1; i <= length(s); i++)
            v = v * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1
        return v
    }
    $1 ~ /:$/ { p = $2; sub(/.*:/, "", p); used[hex(p)] = 1 }
    END {
        for (i = 0; i < 10000 && got < n; i++) {
            p = 20000 + (start - 20000 + i) % 10000
            if (!(p in used)) { printf "%s%d", got++ ? " " : "", p }
        }
        print ""
        exit got < n
    }'
}

# Write config file $1: idle_timeout $2 for echo-tcp, port $3 for "moving".
write_config() {
    cat >"$1" <<EOF
; bench/soak.sh: $(basename "$1") (the other file differs in idle_timeout and moving's port)
[global]
workers = 2
log_level = info
drain_timeout = 5s
admin = 127.0.0.1:$admin_port

[listener echo-tcp]
service = echo
address = 127.0.0.1:$echo_port
idle_timeout = $2

[listener echo-udp]
service = echo
protocol = udp
address = 127.0.0.1:$echo_port

[listener echo-unix]
service = echo
protocol = unix
address = $sock

[listener discard]
service = discard
address = 127.0.0.1:$discard_port

[listener http]
service = http-hello
address = 127.0.0.1:$http_port

[listener moving]
service = echo
address = 127.0.0.1:$3
EOF
}

# Poll command "$@" every 0.2 s until it succeeds, for up to $1 seconds.
retry() {
    n=$(($1 * 5))
    shift
    while ! "$@" 2>/dev/null; do
        n=$((n - 1))
        [ $n -gt 0 ] || return 1
        sleep 0.2
    done
}

log_has() { # $1: count of ": reloaded" lines to exceed
    [ "$(grep -c ': reloaded' "$out/coreiod.log")" -gt "$1" ]
}

coreiod_gone() {
    ! alive "$cpid"
}

fd_count() {
    # shellcheck disable=SC2012 # the names are numbers
    ls "/proc/$cpid/fd" 2>/dev/null | wc -l
}

fds_settled() {
    [ "$(fd_count)" -le "$fds_before" ]
}

# One row of soak.tsv at second $1.
sample() {
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$cpid/status" 2>/dev/null) || rss=
    fds=$(fd_count)
    m=$("$py" "$helper" metrics "127.0.0.1:$admin_port" 2>"$tmp/metrics.err") || {
        warn "at ${1}s: GET /metrics failed: $(cat "$tmp/metrics.err")"
        m="NaN NaN NaN"
    }
    # shellcheck disable=SC2086 # $m: three fields
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "${rss:-NaN}" "$fds" $m "$reloads" >>"$out/soak.tsv"
    last_t=$1
}

# SIGHUP with the other file in place; then check the log and the moving listener.
reload() {
    old_port=$move_port
    if [ "$cur" = a ]; then cur=b move_port=$move_b; else cur=a move_port=$move_a; fi
    cp "$out/$cur.ini" "$conf.new" && mv "$conf.new" "$conf"
    n=$(grep -c ': reloaded' "$out/coreiod.log" || :)
    kill -HUP "$cpid"
    reloads=$((reloads + 1))
    printf '%s\t%s\n' "$1" "$cur" >>"$out/reloads.tsv"
    what="reload $reloads at ${1}s (to $cur.ini, moving $old_port -> $move_port)"
    if ! retry 10 log_has "$n"; then
        bad "$what: coreiod did not log \"reloaded\""
    elif ! retry 5 "$py" "$helper" echo-once 127.0.0.1 "$move_port"; then
        bad "$what: no echo on the new port"
    elif ! retry 10 "$py" "$helper" refused 127.0.0.1 "$old_port"; then
        bad "$what: the old port still accepts"
    else
        echo "$what: ok"
    fi
}

# Start load generator $1 (the command is the rest) with low priority; its pid
# goes into gens and into the variable pid_$1.
start_gen() {
    g=$1
    shift
    nice -n 10 "$@" </dev/null >"$out/load-$g.out" 2>"$out/load-$g.err" &
    eval "pid_$g=$!"
    gens="$gens $!"
}

gens_running() {
    for p in $gens; do
        alive "$p" && return 0
    done
    return 1
}

# Wait for load generator $1 and judge its exit status and report.
judge_gen() {
    eval "p=\$pid_$1"
    status=0
    wait "$p" || status=$?
    f=$out/load-$1.out
    case $1 in
    tcp | udp | http_cb)
        lost=$(json_get lost "$f")
        reqs=$(json_get requests "$f")
        echo "$1: $reqs requests, errors $(json_get errors "$f")${lost:+, lost $lost}"
        # UDP may lose a datagram whenever a receive buffer is full (a CPU
        # taken by other work): more than one in 100,000 is a fault.
        if [ -n "$lost" ] && [ "$lost" -gt $((${reqs:-0} / 100000)) ]; then
            bad "$1: $lost UDP datagrams lost, over 1 in 100,000"
        fi
        ;;
    http)
        echo "http: $(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$f") requests (wrk)"
        if grep -qE 'Socket errors|Non-2xx' "$f"; then
            bad "http: wrk reports $(grep -E 'Socket errors|Non-2xx' "$f" | tr -s ' ' | tr '\n' ';')"
        fi
        ;;
    py) echo "python: $(cat "$f")" ;;
    esac
    if [ $status -ne 0 ]; then
        bad "load generator $1 exited with status $status"
        sed 's/^/    /' "$out/load-$1.err" >&2
    fi
}

# soak.png from soak.tsv: three panels, dashed lines at the reloads.
plot() {
    if ! command -v gnuplot >/dev/null 2>&1; then
        warn "no soak.png: gnuplot not found (Debian: gnuplot-nox)"
        return
    fi
    {
        echo "set terminal pngcairo size 1000,1000 font 'sans,10'"
        echo "set output '$out/soak.png'"
        echo "set datafile separator tab"
        echo "set multiplot layout 3,1 title 'coreiod soak: ${secs} s of load," \
            "SIGHUP reload every ${reload_every} s (dashed lines), $(date -u +%Y-%m-%d)'"
        echo "set xlabel 'seconds since the load started'"
        echo "set grid"
        echo "set key top left horizontal opaque"
        echo "set autoscale xfix"
        echo "set yrange [0:*]"
        echo "set offsets 0, 0, graph 0.25, 0"
        awk -F'\t' '{ printf "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb \"gray50\"\n", $1, $1 }' \
            "$out/reloads.tsv"
        echo "set ylabel 'MiB'"
        echo "plot '$out/soak.tsv' skip 1 using 1:(\$2/1024) with linespoints title 'RSS'"
        echo "set ylabel 'count'"
        echo "plot '$out/soak.tsv' skip 1 using 1:3 with linespoints title 'open descriptors', \\"
        echo "     '' skip 1 using 1:6 with linespoints title 'transports (connections, endpoints)'"
        # A log scale: the worst lag since the start would flatten the samples to zero.
        echo "set ylabel 'ms (log scale)'"
        echo "set yrange [*:*]"
        echo "set logscale y"
        echo "set format y '%g'"
        echo "plot '$out/soak.tsv' skip 1 using 1:(\$4*1000) with linespoints title 'loop lag (worst worker)', \\"
        echo "     '' skip 1 using 1:(\$5*1000) with lines title 'worst loop lag since start'"
        echo "unset multiplot"
    } >"$tmp/soak.gp"
    gnuplot "$tmp/soak.gp" 2>"$tmp/gnuplot.err" || warn "gnuplot failed: $(cat "$tmp/gnuplot.err")"
}

# One line per column of soak.tsv: first, max and last value.
summary() {
    awk -F'\t' 'NR == 1 { for (i = 2; i <= 6; i++) name[i] = $i; next }
    {
        for (i = 2; i <= 6; i++) {
            if (NR == 2) { first[i] = $i; max[i] = $i }
            if ($i != "NaN" && $i + 0 > max[i] + 0) max[i] = $i
            last[i] = $i
        }
    }
    END {
        for (i = 2; i <= 6; i++)
            printf "%-10s first %s, max %s, last %s\n", name[i], first[i], max[i], last[i]
    }' "$out/soak.tsv"
}

# ---- checks and set-up -------------------------------------------------------------
case $secs in
'' | *[!0-9]*) die "SECONDS must be a whole number of seconds, not \"$secs\"" ;;
esac
[ "$secs" -ge 20 ] || die "SECONDS must be at least 20"
[ -x "$coreiod" ] || die "$coreiod is not built (make tools/coreiod, or set COREIOD)"
[ -x "$cbench" ] || die "$cbench is not built (make tools/coreio-bench, or set COREIO_BENCH)"
[ -x "$py" ] || die "$py not found (Debian: python3)"
tmp=$(mktemp -d)
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# shellcheck disable=SC2046 # six port numbers
set -- $(pick_ports 6) || die "no six free ports in 20000..29999"
echo_port=$1 discard_port=$2 http_port=$3 move_a=$4 move_b=$5 admin_port=$6
sock=$tmp/echo.sock
mkdir -p "$out"
rm -f "$out/soak.tsv" "$out/soak.png" "$out/reloads.tsv" "$out/coreiod.log" "$out"/load-*
write_config "$out/a.ini" 60s "$move_a"
write_config "$out/b.ini" 45s "$move_b"
conf=$tmp/coreio.ini
cp "$out/a.ini" "$conf"
cur=a move_port=$move_a reloads=0
"$coreiod" -c "$conf" </dev/null >/dev/null 2>"$out/coreiod.log" &
cpid=$!
retry 10 grep -q ': ready' "$out/coreiod.log" || {
    sed 's/^/    /' "$out/coreiod.log" >&2
    die "coreiod did not log \"ready\" within 10 s"
}
fds_before=$(fd_count)
rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$cpid/status")
echo "coreiod (pid $cpid) ready: $fds_before descriptors, RSS $rss_before KiB; load for ${secs} s"

# ---- the load, samples and reloads ---------------------------------------------------
start_gen tcp "$cbench" --mode echo -c 4 -s 1024 -d "$secs" --no-pin --json 127.0.0.1 "$echo_port"
start_gen udp "$cbench" --mode udp -c 2 -s 256 -d "$secs" --no-pin --json 127.0.0.1 "$echo_port"
if command -v wrk >/dev/null 2>&1; then
    start_gen http wrk -t1 -c8 -d"${secs}s" --timeout 5s "http://127.0.0.1:$http_port/"
else
    warn "wrk not found (Debian: wrk): HTTP load from coreio-bench --mode http"
    start_gen http_cb "$cbench" --mode http -c 8 -d "$secs" --no-pin --json 127.0.0.1 "$http_port"
fi
start_gen py "$py" "$helper" load --seconds "$secs" --unix "$sock" \
    --discard "127.0.0.1:$discard_port" --metrics "127.0.0.1:$admin_port"
printf 'seconds\trss_kib\tfds\tlag_s\tlag_max_s\ttransports\treloads\n' >"$out/soak.tsv"
: >"$out/reloads.tsv"
t0=$(date +%s)
next_sample=0 next_reload=$reload_every last_t=-1
while :; do
    now=$(($(date +%s) - t0))
    if ! alive "$cpid"; then
        bad "coreiod died after ${now}s (log: $out/coreiod.log)"
        tail -n 5 "$out/coreiod.log" | sed 's/^/    /' >&2
        cpid=
        # No point loading a dead server: SIGINT ends each generator's run early.
        for p in $gens; do kill -INT "$p" 2>/dev/null || :; done
        break
    fi
    if [ "$now" -ge "$next_sample" ]; then
        sample "$now"
        next_sample=$((next_sample + interval))
    fi
    if [ "$now" -ge "$next_reload" ] && [ $((now + 5)) -lt "$secs" ]; then
        reload "$now"
        next_reload=$((next_reload + reload_every))
    fi
    gens_running || break
    if [ "$now" -gt $((secs + 30)) ]; then
        bad "load generators still running 30 s after the end: killed"
        for p in $gens; do kill -KILL "$p" 2>/dev/null || :; done
        break
    fi
    sleep 1
done

# ---- the verdict -------------------------------------------------------------------
for g in tcp udp http http_cb py; do
    eval "p=\${pid_$g:-}"
    [ -z "$p" ] || judge_gen "$g"
done
gens=
if [ -n "$cpid" ]; then
    # Connections close when the generators exit: give coreiod a moment to see it.
    retry 10 fds_settled || :
    now=$(($(date +%s) - t0))
    [ "$now" -gt "$last_t" ] || now=$((last_t + 1)) # a row of its own after the loop's last
    sample "$now"
    fds_after=$(fd_count)
    if [ "$fds_after" -gt "$fds_before" ]; then
        bad "descriptors: $fds_before before the load, $fds_after once it stopped"
    fi
    kill -TERM "$cpid"
    if ! retry 15 coreiod_gone; then
        bad "coreiod still running 15 s after SIGTERM: killed"
        kill -KILL "$cpid" 2>/dev/null || :
    fi
    status=0
    wait "$cpid" || status=$?
    cpid=
    [ $status -eq 0 ] || bad "coreiod exited with status $status after SIGTERM"
fi
grep -E ': (WARNING|ERROR): ' "$out/coreiod.log" | sort | uniq -c | sort -rn | head -n 10 |
    sed 's/^/coreiod.log: /' >&2 || :
plot
echo "reloads: $reloads; samples in $out/soak.tsv:"
summary
[ ! -s "$out/soak.png" ] || echo "plot: $out/soak.png"
if [ $failed -eq 0 ]; then echo "soak passed"; else echo "soak FAILED"; fi
exit $failed
