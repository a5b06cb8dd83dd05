#!/bin/sh
# bench/callgrind_kv.sh: user-space instructions per kv request, counted by
# callgrind, with 1 worker (every request local) and 2 workers (half of them
# forwarded to the key's owner by a cross-shard call), and from the two what a
# forwarded request costs beside a local one. Unlike CPU time on this 2-core
# machine, where 2 workers and the load generator share the CPUs and each
# cross-worker batch costs a context switch, an instruction count does not
# move with where the threads run.
#
#     sh bench/callgrind_kv.sh BUILDDIR SRCDIR
#
# coreiod runs under valgrind --tool=callgrind on CPU 0 with idle_poll = 0
# (under valgrind the threads take turns, so polling would only count the
# wait), the kv module built out of tree with pkg-config; coreio-bench
# --mode line drives it from CPU 1: 8 connections x 16 pipelined requests,
# GET and SET in turn over 10,000 keys, filled first. As in
# bench/callgrind_echo.sh, the counters are zeroed, a 1 s load gives R1
# requests and I1 instructions, a 3 s load R2 and I2, and the figure is
# (I2 - I1) / (R2 - R1): connecting and going idle cancel out. Requests and
# forwarded requests are read from the service's own metrics.
set -eu
b=$(cd "$1" && pwd)
s=$2
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || :
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PKG_CONFIG_PATH=$b cc -O2 -shared -fPIC -o "$tmp/kv.so" "$s/examples/kv/kv.c" \
    $(PKG_CONFIG_PATH=$b pkg-config --cflags --libs coreio)
metric() { curl -s "http://127.0.0.1:$admin/metrics" | awk -v m="$1" 'index($0, m "{") == 1 { s += $2 } END { print s + 0 }'; }
load() { # $1: seconds
    taskset -c 1 "$b/tools/coreio-bench" -m line -c 8 -p 16 -d "${1}s" --no-pin \
        --line 'GET key{rand:10000}' --line 'SET key{rand:10000} v{n}' 127.0.0.1 "$port" >/dev/null
}
dumps=0
dump() { # the instructions since the counters were last zeroed, into $instr
    TMPDIR=$tmp callgrind_control -d "$pid" >/dev/null 2>&1
    dumps=$((dumps + 1))
    f=$tmp/cg.out.$dumps
    for _ in $(seq 100); do grep -q '^totals:' "$f" 2>/dev/null && break; sleep 0.1; done
    instr=$(sed -n 's/^summary: *//p' "$f")
}

run() { # $1: workers
    port=$(free_port)
    admin=$(free_port)
    printf '[global]\nworkers = %s\npin = no\nidle_poll = 0\nadmin = 127.0.0.1:%s\nlog_level = warning\n\n[module kv]\npath = kv.so\n\n[listener kv]\nservice = kv\naddress = 127.0.0.1:%s\n' \
        "$1" "$admin" "$port" >"$tmp/kv.ini"
    TMPDIR=$tmp taskset -c 0 "$b/libtool" --mode=execute valgrind --tool=callgrind --compress-strings=no \
        --log-file="$tmp/vg.log" --callgrind-out-file="$tmp/cg.out" \
        "$b/tools/coreiod" -c "$tmp/kv.ini" 2>"$tmp/log" &
    pid=$!
    for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$admin/metrics" && break; sleep 0.1; done
    taskset -c 1 "$b/tools/coreio-bench" -m line -c 8 -p 16 -d 3s --no-pin \
        --line 'SET key{rand:10000} v{n}' 127.0.0.1 "$port" >/dev/null
    # The pid is libtool's exec'd valgrind: the same process.
    TMPDIR=$tmp callgrind_control -z "$pid" >/dev/null 2>&1
    q0=$(metric kv_requests_total) f0=$(metric kv_forwarded_total)
    load 1
    q1=$(metric kv_requests_total)
    dump
    i1=$instr
    load 3
    q2=$(metric kv_requests_total) f2=$(metric kv_forwarded_total)
    dump
    i2=$instr
    kill -TERM "$pid"
    wait "$pid" || :
    pid=
    [ -z "${CG_KEEP:-}" ] || cp "$tmp/cg.out.$dumps" "$CG_KEEP/cg.kv.$1"
    awk -v w="$1" -v i1="$i1" -v i2="$i2" -v q0="$q0" -v q1="$q1" -v q2="$q2" -v f0="$f0" -v f2="$f2" 'BEGIN {
        printf "kv_workers_%d_instructions_per_request %.0f\n", w, (i2 - i1) / ((q2 - q1) - (q1 - q0))
        printf "kv_workers_%d_forwarded_share %.3f\n", w, (f2 - f0) / (q2 - q0)
    }'
}

run 1 | tee "$tmp/one"
run 2 | tee "$tmp/two"
awk '
    /kv_workers_1_instructions/ { i1 = $2 }
    /kv_workers_2_instructions/ { i2 = $2 }
    /kv_workers_2_forwarded_share/ { f = $2 }
    END {
        fw = (i2 - (1 - f) * i1) / f
        printf "kv_forwarded_instructions_per_request %.0f\n", fw
        printf "kv_forwarded_over_local %.2f\n", fw / i1
    }' "$tmp/one" "$tmp/two"
