#!/bin/sh
# bench/spawn_run.sh: spawning processes. How many /bin/true children per
# second coreio, python3's asyncio and uvloop start and wait for, from a small
# parent and from one with 1 GiB of touched memory.
#
#     sh bench/spawn_run.sh [SPAWN_COREIO]
#
# The programs (each spawn: start /bin/true with stdin, stdout and stderr on
# /dev/null, wait for its exit):
#   coreio   SPAWN_COREIO (bench/spawn_coreio.c: cio_create_subprocess_exec,
#            cio_process_wait); skipped with a message if not given or not built
#   asyncio  bench/spawn_py.py --loop asyncio (asyncio.create_subprocess_exec,
#            proc.wait; Python 3.11's default child watcher, a thread per child)
#   uvloop   bench/spawn_py.py --loop uvloop (libuv's fork and SIGCHLD handler)
# Each runs two shapes for SPAWN_SECONDS (default 2) after a 0.3 s warm-up:
# "seq", one child at a time, and "concK", K children in flight
# (SPAWN_CONCURRENCY, default 16), all on CPU SPAWN_CPU (default 0): the
# parent and its children share that one CPU, so a rate is what one core
# does. Then "seqx2" (coreio alone): two threads, each with its own loop
# spawning one child at a time, on CPUs SPAWN_CPU and SPAWN_CPU2 (default 1),
# whether loops spawning at once get in each other's way. The large parent
# first writes every page of SPAWN_TOUCH_MIB MiB (default 1024; a malloc in
# C, a bytearray in python), skipped when MemAvailable is short of it.
#
# Reported, as the median of SPAWN_RUNS runs (default 3, each a new process):
# spawns/s; wall time per spawn; the parent's CPU time per spawn (getrusage
# RUSAGE_SELF: utime + stime of all its threads, asyncio's watcher threads
# included) and the children's (RUSAGE_CHILDREN: the reaped /bin/true
# processes, from the clone or fork on, so a fork's copy of the page tables
# is the parent's, their teardown at exec the child's); the parent's VmRSS.
# Then the ratios against the goals: coreio at least 3 times uvloop's rate,
# and coreio's spawn time from the large parent within 1.2 times the small
# one's. A warning goes to stderr when other processes or the hypervisor took
# more than 5% of the CPUs during a run, as its figures are then suspect.
#
# Environment: SPAWN_SECONDS, SPAWN_RUNS, SPAWN_CONCURRENCY, SPAWN_TOUCH_MIB,
# SPAWN_CPU, SPAWN_CPU2, top_srcdir (default: this script's ".."). The exit
# status is 1 if a program failed; a missing peer is not a failure.
set -eu

top=${top_srcdir:-$(dirname "$0")/..}
. "$top/bench/lib.sh"
py=/usr/bin/python3
secs=${SPAWN_SECONDS:-2}
runs=${SPAWN_RUNS:-3}
conc=${SPAWN_CONCURRENCY:-16}
mib=${SPAWN_TOUCH_MIB:-1024}
cpu=${SPAWN_CPU:-0}
cpu2=${SPAWN_CPU2:-1}
begin_run spawn_run.sh

warn() {
    echo "spawn_run.sh: $*" >&2
}

# Seconds since the epoch, with nanoseconds.
now() {
    date +%s.%N
}

# Run program $2 ($3...) as "$1" (NAME/PARENT) pinned to CPU list $cpus; its
# lines, with the parent's label in front, go to the results.
run() {
    what=$1
    shift
    s0=$(cpus_busy "$cpus")
    w0=$(now)
    times >"$tmp/times.0"
    status=0
    taskset -c "$cpus" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" &
    load_pid=$!
    wait "$load_pid" || status=$?
    load_pid=
    times >"$tmp/times.1"
    c=$(($(child_ticks "$tmp/times.1") - $(child_ticks "$tmp/times.0")))
    w=$(awk -v a="$w0" -v b="$(now)" 'BEGIN { print b - a }')
    check_quiet_cpus "spawn_run.sh: $what" "$s0" "$(cpus_busy "$cpus")" "$cpus" "$w" "$c"
    if [ $status -ne 0 ] || ! grep -q . "$tmp/out"; then
        warn "$what: failed (status $status)"
        sed 's/^/  /' "$tmp/err" >&2
        failed=1
        return
    fi
    awk -F'\t' -v p="$parent" 'NF == 8 { print p "\t" $0 }' "$tmp/out" >>"$tmp/results"
}

# Medians over the runs: "parent impl shape" then spawns/s, wall us/spawn,
# parent, children and both's CPU us/spawn, RSS MiB, in the order they ran.
medians() {
    cut -f 1-3 "$tmp/results" | awk '!seen[$0]++' | while IFS='	' read -r p i sh; do
        line="$p	$i	$sh"
        for col in rate wall 7 8 cpu 9; do
            v=$(awk -F'\t' -v p="$p" -v i="$i" -v sh="$sh" -v c="$col" '
                $1 == p && $2 == i && $3 == sh {
                    print c == "rate" ? $6 : c == "wall" ? 1e6 * $5 / $4 : c == "cpu" ? $7 + $8 : $c
                }' "$tmp/results" | median)
            line="$line	$v"
        done
        printf '%s\n' "$line"
    done
}

# The figures, then the ratios: spawn rates compared by wall time (spawns/s)
# and by CPU time (parent + children per spawn: what one core would do with
# nothing else running), and the large parent's time per spawn to the small one's.
table() {
    awk -F'\t' -v big="$big" '
    function ok(x) { return x != "" && x != "-" && x + 0 > 0 }
    # Figure a over figure b for metric m, each "parent SUBSEP impl SUBSEP shape".
    function ratio(a, b, m) {
        if (!ok(v[a, m]) || !ok(v[b, m])) return "-"
        return sprintf("%.2f", v[a, m] / v[b, m])
    }
    function met(r, cmp, lim) {
        if (r == "-" || cmp == "") return "-"
        return (cmp == ">=" ? r + 0 >= lim : r + 0 <= lim) ? "yes" : "no"
    }
    # A row: a against b as rates (kind "rate": a faster above 1) or times ("time").
    function row(what, a, b, kind, goal, cmp, lim,    w, c) {
        w = kind == "rate" ? ratio(a, b, "rate") : ratio(a, b, "wall")
        c = kind == "rate" ? ratio(b, a, "cpu") : ratio(a, b, "cpu")
        if (w == "-" && c == "-") return
        printf "| %s | %s | %s | %s | %s / %s |\n", what, w, c, goal, met(w, cmp, lim),
            met(c, cmp, lim)
    }
    {
        n++; key[n] = $1 SUBSEP $2 SUBSEP $3; p[n] = $1; im[n] = $2; sh[n] = $3
        v[key[n], "rate"] = $4; v[key[n], "wall"] = $5; v[key[n], "cpu"] = $8
        self[n] = $6; kids[n] = $7; rss[n] = $9
        if (!($3 in seen) && $3 != "seqx2") { seen[$3] = 1; shapes[ns++] = $3 }
    }
    END {
        print "| parent | shape | loop | spawns/s | wall us/spawn | parent CPU us/spawn " \
            "| children CPU us/spawn | spawns per CPU-second | parent RSS MiB |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|"
        for (r = 1; r <= n; r++)
            printf "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n", p[r], sh[r],
                im[r], v[key[r], "rate"], v[key[r], "wall"], self[r], kids[r],
                ok(v[key[r], "cpu"]) ? 1e6 / v[key[r], "cpu"] : 0, rss[r]
        print ""
        print "| ratio | by wall time | by CPU time | goal | met (wall / CPU) |"
        print "|---|---:|---:|---|---|"
        for (j = 0; j < 2; j++)
            for (i = 0; i < ns; i++) {
                pa = j ? big : "small"
                row("coreio/uvloop spawn rate, " pa " parent, " shapes[i],
                    pa SUBSEP "coreio" SUBSEP shapes[i], pa SUBSEP "uvloop" SUBSEP shapes[i],
                    "rate", ">= 3", ">=", 3)
                row("coreio/asyncio spawn rate, " pa " parent, " shapes[i],
                    pa SUBSEP "coreio" SUBSEP shapes[i], pa SUBSEP "asyncio" SUBSEP shapes[i],
                    "rate", "-")
            }
        for (k = 0; k < 3; k++)
            for (i = 0; i < ns; i++) {
                im0 = k == 0 ? "coreio" : k == 1 ? "asyncio" : "uvloop"
                row(im0 " time per spawn, " big " / small parent, " shapes[i],
                    big SUBSEP im0 SUBSEP shapes[i], "small" SUBSEP im0 SUBSEP shapes[i], "time",
                    k == 0 ? "<= 1.2" : "-", k == 0 ? "<=" : "", 1.2)
            }
        for (j = 0; j < 2; j++) {
            pa = j ? big : "small"
            row("coreio spawn rate, two loops on two CPUs / one loop on one, " pa " parent",
                pa SUBSEP "coreio" SUBSEP "seqx2", pa SUBSEP "coreio" SUBSEP "seq", "rate", "-")
        }
    }'
}

# ---- check the tools -----------------------------------------------------------
[ $# -le 1 ] || die "usage: sh spawn_run.sh [SPAWN_COREIO]"
coreio=${1:-}
awk -v s="$secs" -v r="$runs" -v c="$conc" -v m="$mib" 'BEGIN {
    exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0 && r ~ /^[1-9][0-9]*$/ &&
        c ~ /^[1-9][0-9]*$/ && m ~ /^[0-9]+$/) }' ||
    die "SPAWN_SECONDS: positive; SPAWN_RUNS, SPAWN_CONCURRENCY: positive integers;" \
        "SPAWN_TOUCH_MIB: an integer"
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian: util-linux)"
taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu (SPAWN_CPU)"
[ -x /bin/true ] || die "/bin/true not found"
hz=$(getconf CLK_TCK)
two=yes
if [ "$cpu2" = "$cpu" ] || ! taskset -c "$cpu2" true 2>/dev/null; then
    warn "skipped two loops: cannot pin to a second CPU $cpu2 (SPAWN_CPU2)"
    two=
fi
if [ -z "$coreio" ] || [ ! -x "$coreio" ]; then
    warn "skipped coreio: ${coreio:-bench/spawn_coreio} is not built"
    coreio=
fi
impls=
for impl in asyncio uvloop; do
    if [ -x "$py" ] && "$py" -c "import $impl" 2>/dev/null; then
        impls="$impls $impl"
    else
        warn "skipped $impl: $py cannot import it (Debian: python3, python3-uvloop)"
    fi
done
big="$mib MiB"
[ "$mib" != 1024 ] || big="1 GiB"
avail=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
mems="0 $mib"
if [ "$mib" -eq 0 ] || [ "${avail:-0}" -lt $((mib + 512)) ]; then
    warn "skipped the large parent: SPAWN_TOUCH_MIB is $mib, MemAvailable ${avail:-?} MiB"
    mems=0
fi

# ---- the runs ------------------------------------------------------------------
: >"$tmp/results"
rep=1
while [ "$rep" -le "$runs" ]; do
    for m in $mems; do
        parent=small
        [ "$m" -eq 0 ] || parent=$big
        opts="--seconds $secs --touch-mib $m"
        cpus=$cpu
        if [ -n "$coreio" ]; then
            # shellcheck disable=SC2086 # $opts is a list of options
            run "coreio, $parent parent" "$coreio" $opts --concurrency "$conc"
            if [ -n "$two" ]; then
                cpus=$cpu,$cpu2
                # shellcheck disable=SC2086
                run "coreio, two loops, $parent parent" "$coreio" $opts --loops 2
                cpus=$cpu
            fi
        fi
        for impl in $impls; do
            # shellcheck disable=SC2086
            run "$impl, $parent parent" "$py" "$top/bench/spawn_py.py" --loop "$impl" $opts \
                --concurrency "$conc"
        done
    done
    rep=$((rep + 1))
done

echo "## Spawning processes ($(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r)," \
    "median of $runs runs of ${secs} s, on CPU $cpu${two:+ (two loops: CPUs $cpu,$cpu2)})"
echo
if [ -s "$tmp/results" ]; then
    medians | table
else
    warn "no figures"
fi
exit $failed
