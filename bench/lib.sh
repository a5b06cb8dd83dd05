# bench/lib.sh: shell functions shared by the network benchmarks
# (bench/echo_run.sh, bench/udp_run.sh, bench/http_run.sh, bench/workers_run.sh,
# bench/callgrind_echo.sh, bench/soak.sh). Sourced, not run.
#
# The server protocol: a server command listens on 127.0.0.1:PORT, prints a line
# containing "listening" on stdout once it accepts connections, and exits on
# SIGTERM. start_server runs it in its own process group; its CPU time
# (cpu_ticks) includes that of its live descendants.
#
# The caller defines warn() (a message to stderr) and these variables:
#   tmp      a private temporary directory (mktemp -d)
#   srv_cpu  the CPU list the server is pinned to (taskset -c syntax)
#   name     the server's name, for messages
#   cc, top  the C compiler and the source tree (build_echo_load, build_echo_libuv)
# start_server sets srv_pid; stop_server clears it.
# shellcheck shell=sh disable=SC2154 # tmp, srv_cpu, name, hz: the caller's

# Quote $1 for sh -c.
quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# A port in 20000..29999 (below Linux's ephemeral range) that no TCP or UDP
# socket, in any state, IPv4 or IPv6, uses now. $1, if given, is a port to
# skip too (one already chosen but not yet bound).
free_port() {
    cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | awk -v start=$((20000 + $$ % 10000)) \
        -v skip="${1:-0}" '
    function hex(s,    i, v) {
        for (i = 1; i <= length(s); i++)
            v = v * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1
        return v
    }
    $1 ~ /:$/ { p = $2; sub(/.*:/, "", p); used[hex(p)] = 1 }
    END {
        used[skip] = 1
        for (i = 0; i < 10000; i++) {
            p = 20000 + (start - 20000 + i) % 10000
            if (!(p in used)) { print p; exit }
        }
        exit 1
    }'
}

# Replace every {PORT} in $1 by $2 and print the result.
subst_port() {
    sp_rest=$1
    sp_out=
    while :; do
        case $sp_rest in
        *'{PORT}'*)
            sp_out=$sp_out${sp_rest%%\{PORT\}*}$2
            sp_rest=${sp_rest#*\{PORT\}}
            ;;
        *) break ;;
        esac
    done
    printf '%s\n' "$sp_out$sp_rest"
}

# 0 if process $1 exists and is not a zombie.
alive() {
    [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

# 0 if a process other than a zombie is left in process group $1.
group_alive() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pgid="$1" '
    { sub(/.*\) /, ""); if ($3 == pgid && $1 != "Z") found = 1 } # $3: pgrp
    END { exit !found }'
}

# utime + stime, in clock ticks, of process $1 and its live descendants.
cpu_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
    {
        pid = $1; line = $0
        sub(/.*\) /, "", line) # drop "pid (comm) ": comm may hold spaces
        split(line, f, " ")
        parent[pid] = f[2]; ticks[pid] = f[12] + f[13]
    }
    END {
        for (pid in ticks)
            for (p = pid; p != "" && p > 1; p = parent[p])
                if (p == root) { sum += ticks[pid]; break }
        print sum + 0
    }'
}

# utime + stime, in clock ticks, of the children this shell has waited for,
# from file $1 written by "times" (in the shell itself: in a $(subshell) it
# would report the subshell's). Needs $hz.
child_ticks() {
    awk -v hz="$hz" 'NR == 2 {
        split($1, u, "m"); split($2, s, "m")
        printf "%.0f\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz
    }' "$1"
}

# Field $1 of the JSON line in file $2 (echo_load's flat output).
json_get() {
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2"
}

# The median of the numbers on standard input ("-" if there are none; lines
# that are not numbers, such as "-" or "error", are left out).
median() {
    awk '$1 ~ /^-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ { v[n++] = $1 + 0 }
    END {
        if (n == 0) { print "-"; exit }
        for (i = 1; i < n; i++) # insertion sort: a handful of values
            for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
        print m
    }'
}

# Wait for the load generator the caller has just started in the background
# ($!), with its stderr going to $tmp/load.err; load_pid names it meanwhile,
# for cleanup_run. If it fails, warn "$1 failed (status N)" and show its
# stderr. Returns its status, which is also left in $status.
wait_load() {
    load_pid=$!
    status=0
    wait "$load_pid" || status=$?
    load_pid=
    if [ $status -ne 0 ]; then
        warn "$1 failed (status $status)"
        sed 's/^/  /' "$tmp/load.err" >&2
    fi
    return $status
}

# Send signal $1 to the server's process group (to the server alone if that fails).
signal_server() {
    kill "-$1" "-$srv_pid" 2>/dev/null || kill "-$1" "$srv_pid" 2>/dev/null || :
}

# Start server command $1 (with {PORT} already replaced) pinned to $srv_cpu,
# in its own process group; wait up to $2 s (default 10) for "listening". Its
# TMPDIR is $tmp, so that what a wrapper script leaves there when it is killed
# goes too.
start_server() {
    : >"$tmp/srv.out" # before the fork: the last server's "listening" must not count
    TMPDIR=$tmp setsid taskset -c "$srv_cpu" sh -c "exec $1" \
        </dev/null >"$tmp/srv.out" 2>"$tmp/srv.err" &
    srv_pid=$!
    i=0
    while [ $i -lt $((${2:-10} * 10)) ]; do
        grep -q listening "$tmp/srv.out" && return 0
        alive "$srv_pid" || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# SIGTERM to the server's process group; SIGKILL if some of it is still there
# after $1 s (default 5). Then the last lines of its stderr, if any.
stop_server() {
    signal_server TERM
    i=0
    while group_alive "$srv_pid" && [ $i -lt $((${1:-5} * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if group_alive "$srv_pid"; then
        warn "$name: still running ${1:-5} s after SIGTERM, killed"
        signal_server KILL
    fi
    status=0
    wait "$srv_pid" || status=$?
    case $status in
    0 | 143) ;;
    *) warn "$name: exit status $status" ;;
    esac
    if [ -s "$tmp/srv.err" ]; then
        tail -n 5 "$tmp/srv.err" | sed "s/^/$name stderr: /" >&2
    fi
    srv_pid=
}

# Clock ticks the CPUs of list $1 (comma-separated numbers) spent busy (user,
# nice, system, irq, softirq: any process) and stolen by the hypervisor, as
# "busy steal", from /proc/stat.
cpus_busy() {
    awk -v cpus="$1" '
    BEGIN { n = split(cpus, c, ","); for (i = 1; i <= n; i++) want["cpu" c[i]] = 1 }
    $1 in want { busy += $2 + $3 + $4 + $7 + $8; steal += $9 }
    END { print busy + 0, steal + 0 }' /proc/stat
}

# Warn that "$1" is suspect if, between cpus_busy samples $2 and $3 of the CPU
# list $4, over $5 seconds, more than 5% of those CPUs' time went to the
# hypervisor or to processes other than the benchmark's own ($6 ticks). Needs $hz.
check_quiet_cpus() {
    awk -v what="$1" -v a="$2" -v b="$3" -v cpus="$4" -v secs="$5" -v own="$6" -v hz="$hz" '
    BEGIN {
        split(a, x, " "); split(b, y, " ")
        t = hz * secs * split(cpus, c, ",")
        other = (y[1] - x[1] - own) / t; steal = (y[2] - x[2]) / t
        if (other < 0) other = 0 # with steal, task times run ahead of /proc/stat
        if (other > 0.05 || steal > 0.05)
            printf "%s: CPUs %s spent %.0f%% on other processes and %.0f%% stolen by the " \
                "hypervisor; figures suspect\n", what, cpus, 100 * other,
                100 * steal > "/dev/stderr"
    }'
}

# Begin a benchmark script: a private temporary directory in $tmp, no server
# or load generator yet, and a cleanup that stops whatever is still running
# (the server's whole process group) and removes $tmp on any exit. $1 names
# the script in die()'s messages.
begin_run() {
    script_name=$1
    # shellcheck disable=SC2034 # read by the caller
    failed=0
    tmp=$(mktemp -d)
    srv_pid=
    load_pid=
    trap cleanup_run EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

cleanup_run() {
    if [ -n "$load_pid" ]; then
        kill -KILL "$load_pid" 2>/dev/null || :
    fi
    if [ -n "$srv_pid" ]; then
        signal_server KILL
    fi
    rm -rf "$tmp"
}

die() {
    echo "$script_name: $*" >&2
    exit 1
}

# The echo load generator, built from bench/echo_load.c into $tmp with $cc,
# or ECHO_LOAD_BIN if set: its path goes to $load_bin.
build_echo_load() {
    load_bin=${ECHO_LOAD_BIN:-$tmp/echo_load}
    if [ -z "${ECHO_LOAD_BIN:-}" ]; then
        $cc -O2 -std=gnu11 -o "$load_bin" "$top/bench/echo_load.c" || die "cannot build echo_load"
    fi
}

# The libuv echo server, built from bench/echo_libuv.c, or ECHO_LIBUV_BIN if
# set: its path goes to $libuv_bin, empty (with a warning) when libuv is
# missing, since libuv is a peer to skip, not a reason to fail.
build_echo_libuv() {
    libuv_bin=${ECHO_LIBUV_BIN:-$tmp/echo_libuv}
    if [ -z "${ECHO_LIBUV_BIN:-}" ]; then
        uv_flags=$(pkg-config --cflags --libs libuv 2>/dev/null) || uv_flags=-luv
        # shellcheck disable=SC2086 # $uv_flags is a list of flags
        if ! $cc -O2 -std=gnu11 -o "$libuv_bin" "$top/bench/echo_libuv.c" $uv_flags \
            2>"$tmp/libuv.err"; then
            warn "skipped libuv: cannot build bench/echo_libuv.c against libuv (Debian: libuv1-dev)"
            libuv_bin=
        fi
    fi
}

# A latency as wrk prints it (12.5us, 1.20ms, 2.00s) in microseconds.
wrk_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        printf "%.1f\n", u == "ms" ? n * 1000 : u == "s" ? n * 1e6 : u == "m" ? n * 6e7 : n
    }'
}

# "requests rps p50 p99 errors" (latencies in us) from wrk --latency output in file $1.
wrk_fields() {
    req=$(awk '/ requests in / { print $1 }' "$1")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    p50=$(wrk_us "$(awk '$1 == "50%" { print $2 }' "$1")")
    p99=$(wrk_us "$(awk '$1 == "99%" { print $2 }' "$1")")
    err=$(awk '
        /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { e += $5 }
        END { print e + 0 }' "$1")
    echo "$req $rps $p50 $p99 $err"
}
