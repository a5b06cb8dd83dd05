#!/bin/sh
# bench/coreiod_echo.sh: run coreiod as a benchmark server (the protocol of
# bench/echo_run.sh and bench/lib.sh).
#
#     sh bench/coreiod_echo.sh COREIOD PORT [SERVICE]
#
# Writes a coreio.ini(5) into a private temporary directory with one TCP
# listener on 127.0.0.1:PORT running SERVICE (default echo; http-hello for
# bench/http_run.sh), runs COREIOD -c on it, and prints "listening" once
# coreiod logs "ready" (every listener open on every worker). SIGTERM or
# SIGINT stop coreiod gracefully; the script exits with coreiod's status and
# passes on the lines of its log that are not INFO to stderr.
#
# Environment:
#   COREIOD_WORKERS  worker threads (default 1)
#   COREIOD_CORES    their cores, comma-separated (default: the first
#                    COREIOD_WORKERS CPUs this script may run on, so that
#                    `taskset -c 0 sh coreiod_echo.sh ...` pins the worker to 0)
#   COREIOD_BALANCE  reuseport (default) or handoff
#   COREIOD_ADMIN    the admin listener's address (default off)
#   COREIOD_TLS_CERT, COREIOD_TLS_KEY
#                    a certificate chain and its key (PEM): the listener
#                    speaks TLS (tls_certificate, tls_key; bench/tls_run.sh)
set -eu
. "$(dirname "$0")/lib.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: sh coreiod_echo.sh COREIOD PORT [SERVICE]" >&2
    exit 2
fi
coreiod=$1
port=$2
service=${3:-echo}
workers=${COREIOD_WORKERS:-1}
balance=${COREIOD_BALANCE:-reuseport}
admin=${COREIOD_ADMIN:-off}
tls=
if [ -n "${COREIOD_TLS_CERT:-}" ]; then
    tls="tls_certificate = $COREIOD_TLS_CERT
tls_key = ${COREIOD_TLS_KEY:?COREIOD_TLS_KEY goes with COREIOD_TLS_CERT}"
fi

# The first $workers CPUs of this process's affinity list ("0-1,4" style).
cores=${COREIOD_CORES:-$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$$/status" |
    awk -v n="$workers" -F, '{
        for (i = 1; i <= NF && got < n; i++) {
            lo = hi = $i
            if (split($i, r, "-") == 2) { lo = r[1]; hi = r[2] }
            for (c = lo + 0; c <= hi + 0 && got < n; c++) list = list (got++ ? "," : "") c
        }
        print list
    }')}

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -KILL "$pid" 2>/dev/null || :
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/coreio.ini" <<EOF
[global]
workers = $workers
placement = list
cores = $cores
admin = $admin
log_level = info

[listener bench]
service = $service
address = 127.0.0.1:$port
balance = $balance
$tls
EOF

"$coreiod" -c "$dir/coreio.ini" </dev/null >/dev/null 2>"$dir/log" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || :' TERM INT

# Wait up to 10 s for "ready"; coreiod exits at once if the file or a listener fails.
i=0
until grep -q ': ready' "$dir/log"; do
    if ! alive "$pid" || [ $i -ge 200 ]; then
        cat "$dir/log" >&2
        exit 1
    fi
    sleep 0.05
    i=$((i + 1))
done
echo listening

# A signal interrupts wait; wait again until coreiod itself has exited.
while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break
done
pid=
grep -v ': INFO: ' "$dir/log" >&2 || :
exit "$status"
