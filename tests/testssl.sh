#!/bin/bash
# tests/testssl.sh: testssl.sh's protocol and vulnerability scan
# (testssl.sh -p -U) of a coreiod TLS listener (http-hello with the ECDSA
# certificate of tests/tls_pki.sh), on loopback. Fails if the scan reports
# anything of severity HIGH or CRITICAL, or did not run through. It takes
# 30 s or more, so make check does not run it: .ci/run does. Exit 0: pass,
# 77: skipped (testssl.sh, openssl or python3 missing), 1: fail.
set -euo pipefail

bin=${COREIOD:-${top_builddir:-.}/tools/coreiod}
srcdir=${top_srcdir:-..}
[ -f "$srcdir/tests/tls_pki.sh" ] || srcdir=$(cd "$(dirname "$0")/.." && pwd)

# Debian installs the script as "testssl"; upstream calls it testssl.sh.
testssl=$(command -v testssl.sh || command -v testssl || true)
for tool in "$testssl" openssl python3; do
    if [ -z "$tool" ] || ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: ${tool:-testssl.sh} not found"
        exit 77
    fi
done
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
if [ ! -x "$bin" ]; then
    echo "FAIL: $bin not found or not executable"
    exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || { kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
. "$(dirname "$0")/testlib.sh"

sh "$srcdir/tests/tls_pki.sh" "$tmp/pki" >"$tmp/pki.log" 2>&1 || {
    echo "FAIL: tests/tls_pki.sh:"
    show "$tmp/pki.log"
    exit 1
}
port=$("$py" "$srcdir/tests/coreiod_peer.py" ports 1)
cat >"$tmp/testssl.ini" <<EOF
[global]
workers = 2
pin = no
admin = off

[listener https]
service = http-hello
address = 127.0.0.1:$port
tls_certificate = pki/server.pem
tls_key = pki/server.key
EOF
"$bin" -c "$tmp/testssl.ini" 2>"$tmp/coreiod.log" &
pid=$!
for _ in $(seq 200); do
    grep -qF 'coreiod: ready' "$tmp/coreiod.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
grep -qF 'coreiod: ready' "$tmp/coreiod.log" || {
    echo "FAIL: coreiod did not start:"
    show "$tmp/coreiod.log"
    exit 1
}

rc=0
timeout 600 "$testssl" -p -U --quiet --color 0 --jsonfile "$tmp/scan.json" "127.0.0.1:$port" \
    >"$tmp/scan.out" 2>&1 || rc=$?
sed 's/^/    | /' "$tmp/scan.out"
[ "$rc" -eq 0 ] || echo "note: $testssl exited with status $rc"

# The flat JSON is a list of findings {id, severity, finding}; the scan must
# have run (protocols and a vulnerability found in it) and found nothing HIGH+.
if out=$("$py" - "$tmp/scan.json" <<'EOF' 2>&1
import json, sys
findings = json.load(open(sys.argv[1]))
ids = {f.get("id") for f in findings}
missing = {"TLS1_2", "TLS1_3", "heartbleed", "ROBOT"} - ids
if missing:
    sys.exit("the scan did not run through: no finding for %s" % ", ".join(sorted(missing)))
worst = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL", "FATAL")]
for f in worst:
    print("%s %s: %s" % (f["severity"], f["id"], f.get("finding", "")))
if worst:
    sys.exit(1)
print("%d findings, none HIGH or CRITICAL" % len(findings))
EOF
); then
    pass "testssl.sh -p -U on a coreiod TLS listener: $out"
else
    bad "testssl.sh -p -U on a coreiod TLS listener:"
    echo "$out" | sed 's/^/    | /'
fi
kill -TERM "$pid"
wait "$pid" || bad "coreiod exited with status $? after the scan"
pid=
if [ "$fail" -ne 0 ]; then
    echo "FAIL: testssl.sh: see the FAIL lines above"
    exit 1
fi
echo "PASS: testssl.sh"
exit 0
