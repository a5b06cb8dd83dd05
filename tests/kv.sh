#!/bin/bash
# tests/kv.sh: the kv example (examples/kv/kv.c) as a user runs it. It is
# built out of tree with `pkg-config --cflags --libs coreio` alone (against
# the build tree's coreio-uninstalled.pc), loaded by coreiod from a [module]
# section, and driven by python3 asyncio clients (tests/kv_peer.py):
#  - coreiod -t names the file and line of a module's unknown key, a bad
#    value, a missing module, and refuses a module built for another ABI;
#  - with 2 workers, 10,000 keys stored through 50 connections read back
#    through 50 others with no mismatch, and the metrics show forwarding;
#  - UDP INCR on the same service;
#  - a reload that changes the service's keys reaches reconfigure, and keeps
#    an open connection and the data;
#  - SIGTERM exits 0;
#  - a module added to the file by SIGHUP is loaded and serves.
# Exit 0: pass, 77: skipped (no compiler or pkg-config), 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
peer=$srcdir/tests/kv_peer.py
py=$(command -v python3)
cc=${CC:-cc}
for tool in "$cc" pkg-config curl socat; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "SKIP: $tool not found"
        exit 77
    }
done

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/testlib.sh"

# ---- the module, out of tree -------------------------------------------------------
export PKG_CONFIG_PATH=$(cd "$builddir" && pwd)
flags=$(pkg-config --cflags --libs coreio)
"$cc" -std=gnu11 -shared -fPIC -o "$tmp/kv.so" "$srcdir/examples/kv/kv.c" \
    $flags || {
    echo "FAIL: the kv module does not build with pkg-config's flags ($flags)"
    exit 1
}
pass "examples/kv builds out of tree with: pkg-config --cflags --libs coreio"
cat >"$tmp/wrong_abi.c" <<'EOF'
#include <coreio.h>
static cio_protocol_t *none(cio_service_ctx_t *ctx) { return NULL; }
static const cio_service_t s = {.name = "old", .kinds = CIO_SERVICE_STREAM, .factory = none};
CIO_EXTERN const cio_module_t coreio_module;
const cio_module_t coreio_module = {.abi = CIO_MODULE_ABI + 1, .name = "old",
                                    .services = (const cio_service_t *const[]){&s, NULL}};
EOF
"$cc" -std=gnu11 -shared -fPIC -o "$tmp/wrong_abi.so" "$tmp/wrong_abi.c" $flags

# ---- coreiod -t ----------------------------------------------------------------------
read -r p_kv p_admin p_spare < <("$py" "$srcdir/tests/coreiod_peer.py" ports 3)
cat >"$tmp/bad.ini" <<EOF
[global]
admin = off

[module kv]
path = kv.so

[module gone]
path = /nonexistent/gone.so

[module old]
path = $tmp/wrong_abi.so

[service kv]
max_keys = lots
max_value_size = 4K
colour = blue

[listener kv]
service = kv
address = 127.0.0.1:$p_kv
EOF
if "$bin" -t -c "$tmp/bad.ini" >"$tmp/t.out" 2>&1; then
    bad "-t accepted a file with module errors"
else
    expect=("$tmp/bad.ini:8: [module gone]: /nonexistent/gone.so: cannot open shared object file"
        "$tmp/bad.ini:11: [module old]: $tmp/wrong_abi.so: built for module ABI"
        "$tmp/bad.ini:14: max_keys: \"lots\" is not an integer"
        "$tmp/bad.ini:16: unknown key \"colour\" in [service kv]")
    for e in "${expect[@]}"; do
        if grep -qF -- "$e" "$tmp/t.out"; then pass "-t: $e"; else bad "-t lacks: $e"; fi
    done
    [ "$(wc -l <"$tmp/t.out")" -eq 4 ] && pass "-t: exactly those four errors" ||
        { bad "-t said more or less:"; show "$tmp/t.out"; }
fi

cat >"$tmp/kv.ini" <<EOF
[global]
workers = 2
admin = 127.0.0.1:$p_admin
drain_timeout = 2s

[module kv]
path = kv.so

[service kv]
max_value_size = 4K

[listener kv]
service = kv
address = 127.0.0.1:$p_kv

[listener kv-udp]
service = kv
protocol = udp
address = 127.0.0.1:$p_kv
EOF
"$bin" -t -c "$tmp/kv.ini" 2>"$tmp/t2.out" && pass "-t: the kv configuration is valid" ||
    { bad "-t refused kv.ini"; show "$tmp/t2.out"; }
"$bin" -c "$tmp/kv.ini" --list-services >"$tmp/list.out" 2>&1
grep -qF "    max_value_size = size (default 1K) [1..1.04858e+06]: bytes of one value" \
    "$tmp/list.out" && pass "--list-services shows kv's keys" ||
    { bad "--list-services:"; show "$tmp/list.out"; }

# ---- serving -------------------------------------------------------------------------
log=$tmp/kv.log
"$bin" -c "$tmp/kv.ini" 2>"$log" &
pid=$!
for _ in $(seq 200); do grep -qF 'coreiod: ready' "$log" && break; sleep 0.05; done
grep -qF 'coreiod: ready (2 workers, 2 listeners)' "$log" || { bad "not ready"; show "$log"; exit 1; }

"$py" "$peer" store "$p_kv" 10000 50 >"$tmp/store.out" && pass "stored 10000 keys over 50 connections" ||
    { bad "store"; show "$tmp/store.out"; }
"$py" "$peer" verify "$p_kv" 10000 50 >"$tmp/verify.out" && pass "read every key back over 50 other connections: $(cat "$tmp/verify.out")" ||
    { bad "verify"; show "$tmp/verify.out"; }
# A client that half-closes after its requests still gets every answer, forwarded or not.
got=$(for i in 1 2 3 4 5 6 7 8 9; do echo "GET key-$i"; done | socat -t5 - "TCP:127.0.0.1:$p_kv" | grep -c '^VALUE v')
[ "$got" -eq 9 ] && pass "a half-closed connection gets all 9 answers" || bad "half-close: $got of 9 answers"
stats=$("$py" "$peer" send "$p_kv" STATS)
[[ $stats == "STATS keys=10000 shards="*,* ]] && pass "STATS: $stats" || bad "STATS: $stats"
curl -s "http://127.0.0.1:$p_admin/metrics" >"$tmp/metrics"
fwd=$(awk '/^kv_forwarded_total\{/ { s += $2 } END { print s + 0 }' "$tmp/metrics")
req=$(awk '/^kv_requests_total\{/ { s += $2 } END { print s + 0 }' "$tmp/metrics")
[ "$fwd" -gt 0 ] && [ "$req" -ge 20000 ] && pass "metrics: $fwd of $req requests forwarded" ||
    { bad "metrics: forwarded $fwd, requests $req"; show "$tmp/metrics"; }
grep -q '^kv_keys{worker="1"} [1-9]' "$tmp/metrics" && pass "metrics: keys per shard" ||
    bad "metrics: no kv_keys for worker 1"
"$py" "$peer" incr "$p_kv" hits 25 >"$tmp/incr.out" && pass "UDP INCR counts to 25" ||
    { bad "INCR"; show "$tmp/incr.out"; }

# ---- reload: new keys reach reconfigure; connections and data stay -----------------------
exec 3> >("$py" "$peer" hold "$p_kv" >"$tmp/hold.out")
for _ in $(seq 100); do grep -q before "$tmp/hold.out" 2>/dev/null && break; sleep 0.05; done
# The module's path written otherwise: the same file, not a second module.
sed -i 's/max_value_size = 4K/max_value_size = 8K/; s|^path = kv.so|path = ./kv.so|' "$tmp/kv.ini"
kill -HUP "$pid"
for _ in $(seq 100); do grep -qF 'reloaded' "$log" && break; sleep 0.05; done
grep -qF '[worker 0] kv: max_keys = 1000000, max_value_size = 8192' "$log" &&
    grep -qF '[worker 1] kv: max_keys = 1000000, max_value_size = 8192' "$log" &&
    pass "SIGHUP: reconfigure ran on both workers with the new value" ||
    { bad "no reconfigure in the log"; show "$log"; }
big=$(head -c 6000 /dev/zero | tr '\0' b)
[ "$("$py" "$peer" send "$p_kv" "SET big $big")" = STORED ] &&
    pass "a 6000-byte value is stored under the new max_value_size" || bad "6K value refused"
exec 3>&-
for _ in $(seq 100); do grep -q after "$tmp/hold.out" 2>/dev/null && break; sleep 0.05; done
wait $! 2>/dev/null && pass "a connection opened before the reload still works, data kept: $(tail -1 "$tmp/hold.out")" ||
    { bad "the held connection"; show "$tmp/hold.out"; }

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] && grep -qF 'coreiod: stopped' "$log" && pass "SIGTERM: exit 0" ||
    { bad "SIGTERM: status $status"; show "$log"; }
# ---- a module added by SIGHUP ----------------------------------------------------------
# (docs/SERVICES.md, section 8: a reload can load a module; removing one waits for a restart)
printf '[global]\nworkers = 2\nadmin = off\n\n[listener echo]\nservice = echo\naddress = 127.0.0.1:%s\n' \
    "$p_spare" >"$tmp/later.ini"
"$bin" -c "$tmp/later.ini" 2>"$tmp/later.log" &
pid=$!
for _ in $(seq 200); do grep -qF 'coreiod: ready' "$tmp/later.log" && break; sleep 0.05; done
sed "s/^admin = .*/admin = off/" "$tmp/kv.ini" >"$tmp/later.ini"
kill -HUP "$pid"
for _ in $(seq 200); do grep -qF 'reloaded' "$tmp/later.log" && break; sleep 0.05; done
[ "$("$py" "$peer" send "$p_kv" "SET late 1")" = STORED ] &&
    pass "SIGHUP loaded the kv module and opened its listener" ||
    { bad "the module added by SIGHUP does not serve"; show "$tmp/later.log"; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || bad "SIGTERM after the module was added: status $status"
cat "$tmp/later.log" >>"$log"

if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$log"; then
    bad "sanitizer report:"
    show "$log"
fi
exit $fail
