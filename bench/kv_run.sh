#!/bin/sh
# bench/kv_run.sh: the kv example service (examples/kv) under load, with 1
# and 2 workers: requests per second, the server's CPU time per request, and
# the share of requests forwarded to another worker; from the two runs, what
# a forwarded request costs beside a local one.
#
#     sh bench/kv_run.sh BUILDDIR SRCDIR
#
# The module is built out of tree against BUILDDIR's coreio-uninstalled.pc.
# The load is coreio-bench --mode line on one thread: 50% GET, 50% SET over
# 100,000 random keys, 8 connections of 16 pipelined requests, so that one
# system call of the generator carries many requests and the generator stays
# far from its limit. The server runs on CPU 0 and the generator on CPU 1,
# both with 1 and with 2 workers: the two workers then share CPU 0, so the
# generator never takes the server's CPU time, at the price of a context
# switch where separate cores would take a cross-core wake-up. The forwarded cost is
# (cpu2 - (1 - f) * cpu1) / f, with cpu1, cpu2 the server's CPU time per
# request with 1 and 2 workers and f the share forwarded with 2: an upper
# bound, as each of 2 workers also batches less than 1 worker alone.
# Environment: KV_SECONDS (default 5).
set -eu
b=$1
s=$2
secs=${KV_SECONDS:-5}
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || :
    rm -rf "$dir"
}
trap cleanup EXIT

PKG_CONFIG_PATH=$(cd "$b" && pwd) cc -O2 -shared -fPIC -o "$dir/kv.so" "$s/examples/kv/kv.c" \
    $(PKG_CONFIG_PATH=$(cd "$b" && pwd) pkg-config --cflags --libs coreio)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)

# CPU seconds (user + system) process $1 has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

# Sum of the samples of metric $1 on the admin port.
metric() { curl -s "http://127.0.0.1:$admin/metrics" | awk -v m="$1" 'index($0, m "{") == 1 { s += $2 } END { print s + 0 }'; }

run() { # $1: workers, $2: the server's CPUs, $3: the generator's, $4: idle_poll
    cat >"$dir/kv.ini" <<EOF
[global]
workers = $1
pin = no
idle_poll = $4
admin = 127.0.0.1:$admin
log_level = warning

[module kv]
path = kv.so

[listener kv]
service = kv
address = 127.0.0.1:$port
EOF
    taskset -c "$2" "$b/tools/coreiod" -c "$dir/kv.ini" 2>"$dir/log" &
    pid=$!
    i=0
    until curl -s -o /dev/null "http://127.0.0.1:$admin/metrics"; do
        i=$((i + 1))
        [ $i -lt 200 ] || { cat "$dir/log" >&2; exit 1; }
        sleep 0.05
    done
    # Fill the keys first, so that GETs find them.
    taskset -c "$3" "$b/tools/coreio-bench" -m line -c 8 -p 16 -d 2s --no-pin \
        --line 'SET key{rand:100000} value-{n}' 127.0.0.1 "$port" >/dev/null
    req0=$(metric kv_requests_total)
    fwd0=$(metric kv_forwarded_total)
    c0=$(cpu_of "$pid")
    taskset -c "$3" "$b/tools/coreio-bench" -m line -c 8 -p 16 -d "${secs}s" --no-pin --json \
        --line 'GET key{rand:100000}' --line 'SET key{rand:100000} v{n}' \
        127.0.0.1 "$port" >"$dir/out.json" &
    gen=$!
    wait "$gen"
    c1=$(cpu_of "$pid")
    req=$(($(metric kv_requests_total) - req0))
    fwd=$(($(metric kv_forwarded_total) - fwd0))
    kill -TERM "$pid"
    wait "$pid" || :
    pid=
    python3 - "$dir/out.json" "$1" "$req" "$fwd" "$c0" "$c1" "$secs" <<'EOF'
import json, sys
out = json.load(open(sys.argv[1]))
workers, req, fwd = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = float(sys.argv[6]) - float(sys.argv[5])
secs = float(sys.argv[7])
print("kv_workers_%d_rps %.0f" % (workers, req / secs))
print("kv_workers_%d_cpu_us_per_request %.3f" % (workers, cpu / req * 1e6))
print("kv_workers_%d_forwarded_share %.3f" % (workers, fwd / req))
print("kv_workers_%d_p99_us %.1f" % (workers, out["latency_us"]["p99"] if "latency_us" in out else -1))
print("kv_workers_%d_errors %d" % (workers, sum(out.get("errors", {}).values()) if isinstance(out.get("errors"), dict) else out.get("errors", 0)))
EOF
}

run 1 0 1 0 | tee "$dir/one"
run 2 0 1 0 | tee "$dir/two"
awk '
    /kv_workers_1_cpu_us/ { c1 = $2 }
    /kv_workers_2_cpu_us/ { c2 = $2 }
    /kv_workers_2_forwarded_share/ { f = $2 }
    END {
        if (f > 0) {
            fw = (c2 - (1 - f) * c1) / f
            printf "kv_forwarded_cpu_us_per_request %.3f\n", fw
            printf "kv_forwarded_over_local_cpu %.2f\n", fw / c1
        }
    }' "$dir/one" "$dir/two"
