#!/bin/bash
# tests/coreiod_children.sh: the child processes services start
# (cio_service_subprocess_exec), ended by coreiod's stop (coreiod(8),
# docs/SERVICES.md section 7). tests/brood_module.c is built out of tree with
# pkg-config; its services brood and brood2 start children on each of 2
# workers and log their pids.
#  - a reload that removes brood2, whose children ignore SIGTERM: they get
#    the drain time, SIGTERM, then SIGKILL, each logged with its pid, and are
#    gone; brood's children run on;
#  - SIGTERM: brood's children (sleep) get SIGTERM at the end of the drain
#    time and exit by it (no SIGKILL), are reaped, and coreiod exits 0 well
#    before the bound below (drain_timeout + the 1 s grace + 1 s reaping, plus
#    3 s of slack for a loaded machine: a hang, not a measurement).
# Exit 0: pass, 77: skipped (no compiler or pkg-config), 1: fail.
set -euo pipefail

builddir=${top_builddir:-.}
srcdir=${top_srcdir:-..}
bin=$builddir/tools/coreiod
py=$(command -v python3)
cc=${CC:-cc}
for tool in "$cc" pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "SKIP: $tool not found"
        exit 77
    }
done

tmp=$(mktemp -d)
pid=
kids=()
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    for k in "${kids[@]}"; do kill -KILL "$k" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/testlib.sh"

build_module brood_module.c brood.so

# The pids of the children service $1 logged as started, one a line.
pids_of() { sed -n "s/.*\] $1: child process \([0-9]*\) started$/\1/p" "$log"; }
# Is $1 a child of coreiod, running (not a zombie)?
running_child() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    set -- ${stat##*\) }
    [ "$1" != Z ] && [ "$2" = "$pid" ]
}
# Wait up to $2 seconds until $1 is gone from /proc (reaped, not a zombie).
gone_within() {
    for _ in $(seq $(($2 * 20))); do [ -e "/proc/$1" ] || return 0; sleep 0.05; done
    return 1
}

read -r p1 p2 < <("$py" "$srcdir/tests/coreiod_peer.py" ports 2)
cat >"$tmp/brood.ini" <<EOF
[global]
workers = 2
admin = off
drain_timeout = 1s

[module brood]
path = brood.so

[service brood]
count = 2

[service brood2]
count = 1
command = trap '' TERM && exec sleep 1000

[listener a]
service = brood
address = 127.0.0.1:$p1

[listener b]
service = brood2
address = 127.0.0.1:$p2
EOF
log=$tmp/brood.log
"$bin" -c "$tmp/brood.ini" 2>"$log" &
pid=$!
for _ in $(seq 200); do [ "$(grep -c 'started$' "$log")" -ge 6 ] && break; sleep 0.05; done
mapfile -t a < <(pids_of brood)
mapfile -t b < <(pids_of brood2)
kids=("${a[@]}" "${b[@]}")
[ "${#a[@]}" -eq 4 ] && [ "${#b[@]}" -eq 2 ] && pass "4 children of brood, 2 of brood2, on 2 workers" ||
    { bad "children: brood ${a[*]}, brood2 ${b[*]}"; show "$log"; exit 1; }
for k in "${kids[@]}"; do running_child "$k" || bad "child $k is not a running child of coreiod"; done

# ---- a reload that removes brood2 ------------------------------------------------------
sed -i '/^\[listener b\]/,$d' "$tmp/brood.ini"
kill -HUP "$pid"
for k in "${b[@]}"; do
    gone_within "$k" 10 || bad "brood2's child $k outlived the reload"
    grep -qF "brood2: child process $k still running at the end of the drain: SIGTERM" "$log" &&
        grep -qF "brood2: child process $k still running 1 s after SIGTERM: SIGKILL" "$log" &&
        pass "reload: brood2's child $k ignored SIGTERM, was killed and reaped" ||
        { bad "reload: no SIGTERM then SIGKILL logged for $k"; show "$log"; }
done
for k in "${a[@]}"; do
    running_child "$k" && pass "reload: brood's child $k runs on" || bad "brood's child $k is gone"
done

# ---- SIGTERM ----------------------------------------------------------------------------
start=$(date +%s%N)
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
ms=$((($(date +%s%N) - start) / 1000000))
pid=
[ "$status" -eq 0 ] && pass "SIGTERM: exit 0 after $ms ms" || { bad "SIGTERM: status $status"; show "$log"; }
[ "$ms" -lt 6000 ] || bad "SIGTERM: the stop took $ms ms (bound: 6000)"
for k in "${a[@]}"; do
    [ -e "/proc/$k" ] && bad "brood's child $k outlived coreiod"
    grep -qF "brood: child process $k exited after SIGTERM (returncode -15)" "$log" &&
        ! grep -qF "child process $k still running 1 s after SIGTERM: SIGKILL" "$log" &&
        pass "SIGTERM: brood's child $k ended by SIGTERM, not SIGKILL, and reaped" ||
        { bad "SIGTERM: the log of $k"; show "$log"; }
done
kids=()
grep -qF 'coreiod: stopped' "$log" || bad "no 'stopped' line"

if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error' "$log"; then
    bad "sanitizer report:"
    show "$log"
fi
exit $fail
