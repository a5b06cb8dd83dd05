#!/bin/bash
# tests/bench_line.sh: coreio-bench --mode line, the request/response line
# protocol. Peers: coreiod's echo service (each line comes back as it went)
# and a python3 asyncio line server written here, which records every line it
# receives and answers "OK <line>" (or "ERR", a line of a given length, a
# response split into pieces, two responses at once, or a batch held back
# until a whole pipeline has come). Checks what the server received ({n} unique and contiguous, {conn}
# one per connection, {rand:N} in range and reproducible by --seed, the
# templates in turn), that the counts and bytes agree on both sides, --expect
# counting, the 64 KiB response limit, the JSON and text reports, and that
# bad templates and options exit with 2 naming the problem.
# Exit 0: pass, 77: skipped (no python3), 1: fail. Run from the build tree;
# COREIO_BENCH and COREIOD name the binaries elsewhere.
set -u
bench=${COREIO_BENCH:-${top_builddir:-.}/tools/coreio-bench}
coreiod=${COREIOD:-${top_builddir:-.}/tools/coreiod}
py=$(command -v python3) || {
    echo "SKIP: python3 not found"
    exit 77
}
for bin in "$bench" "$coreiod"; do
    if [ ! -x "$bin" ]; then
        echo "FAIL: $bin not found or not executable"
        exit 1
    fi
done

tmp=$(mktemp -d) || exit 1
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/testlib.sh"

# The line server. "serve" prints its port, then answers each line by its
# first word; "dump PORT" waits until every client has gone, prints what the
# server saw since the last dump as JSON, and starts a new record.
cat >"$tmp/lines.py" <<'PY'
import asyncio, json, socket, sys

conns = []  # per client connection: its record
state = {"open": 0}


class Line(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf, self.rec, self.held = transport, b"", None, []
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out = asyncio.Queue()
        self.writer = asyncio.ensure_future(self.write_all())

    def connection_lost(self, exc):
        self.writer.cancel()
        if self.rec is not None:
            self.rec["partial"], self.rec["held"] = len(self.buf), len(self.held)
            state["open"] -= 1

    def data_received(self, data):
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            self.line(line)

    def line(self, line):
        if self.rec is None:
            if line == b"DUMP":
                asyncio.ensure_future(dump(self.transport))
                return
            self.rec = {"lines": [], "responses": 0, "bytes_out": 0, "max_held": 0}
            conns.append(self.rec)
            state["open"] += 1
        self.rec["lines"].append(line.decode())
        word, _, arg = line.partition(b" ")
        if word == b"HOLD":  # answer once ARG lines are waiting, all in order
            self.held.append(line)
            self.rec["max_held"] = max(self.rec["max_held"], len(self.held))
            if len(self.held) == int(arg.split()[0]):
                for held in self.held:
                    self.respond(b"OK " + held + b"\r\n")
                self.held = []
        elif word == b"ERR":
            self.respond(b"ERR\r\n")
        elif word == b"TWICE":  # two lines for one, in one write
            self.respond(b"OK\nOK\n")
        elif word == b"LEN":  # a line of ARG bytes
            self.respond(b"x" * int(arg) + b"\r\n")
        elif word == b"SPLIT":  # "O", "K ...", "\r", "\n", a moment apart
            self.respond(b"OK " + line + b"\r\n", split=True)
        else:
            self.respond(b"OK " + line + b"\n")

    def respond(self, data, split=False):
        self.rec["responses"] += 1
        self.rec["bytes_out"] += len(data)
        self.out.put_nowait((data, split))

    async def write_all(self):
        while True:
            data, split = await self.out.get()
            pieces = [data[:1], data[1:-2], data[-2:-1], data[-1:]] if split else [data]
            for i, piece in enumerate(pieces):
                if i:
                    await asyncio.sleep(0.002)
                self.transport.write(piece)


async def dump(transport):
    for _ in range(1000):  # up to 10 s for the clients to go
        if state["open"] == 0:
            break
        await asyncio.sleep(0.01)
    transport.write(json.dumps({"open": state["open"], "conns": conns}).encode() + b"\n")
    transport.close()
    conns.clear()


async def serve():
    server = await asyncio.get_running_loop().create_server(Line, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


def dump_client(port):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"DUMP\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    sys.stdout.write(data.decode())


if sys.argv[1] == "serve":
    asyncio.run(serve())
elif sys.argv[1] == "dump":
    dump_client(int(sys.argv[2]))
elif sys.argv[1] == "port":  # a port free on 127.0.0.1 now
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
PY

"$py" "$tmp/lines.py" serve >"$tmp/port" 2>"$tmp/server.err" &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$tmp/port" ] && break
    sleep 0.1
done
read -r port <"$tmp/port"
if [ -z "${port:-}" ]; then
    echo "FAIL: the python3 line server did not start"
    cat "$tmp/server.err"
    exit 1
fi

echo_port=$("$py" "$tmp/lines.py" port)
cat >"$tmp/echo.ini" <<EOF
[global]
workers = 1
pin = no
admin = off

[listener echo]
service = echo
address = 127.0.0.1:$echo_port
EOF
"$coreiod" -c "$tmp/echo.ini" >"$tmp/coreiod.out" 2>"$tmp/coreiod.log" &
pids+=($!)
for _ in $(seq 100); do
    grep -qF 'coreiod: ready' "$tmp/coreiod.log" 2>/dev/null && break
    sleep 0.1
done
if ! grep -qF 'coreiod: ready' "$tmp/coreiod.log"; then
    echo "FAIL: coreiod did not become ready"
    cat "$tmp/coreiod.log"
    exit 1
fi

# run_line NAME WANT-STATUS PORT ARGS...: coreio-bench --json --mode line
# ARGS 127.0.0.1 PORT; its JSON goes to $tmp/out.json, its stderr to $tmp/err.
run_line() {
    local name=$1 want=$2 to=$3
    shift 3
    "$bench" --json --mode line "$@" 127.0.0.1 "$to" >"$tmp/out.json" 2>"$tmp/err"
    local status=$?
    if [ $status -ne "$want" ]; then
        bad "$name: exit status $status, expected $want: $(cat "$tmp/out.json" "$tmp/err")"
        return 1
    fi
}

# check NAME PEER PYTHON: run the assertions PYTHON with r (the bench's JSON),
# d (with PEER "lines", the line server's record, fetched now), err (the
# bench's standard error) and the helpers below.
check() {
    local name=$1
    if [ "$2" = lines ]; then
        "$py" "$tmp/lines.py" dump "$port" >"$tmp/dump.json"
    else
        echo '{"open": 0, "conns": []}' >"$tmp/dump.json"
    fi
    if "$py" - "$tmp/out.json" "$tmp/dump.json" "$tmp/err" "$3" <<'PY'; then pass "$name"; else
import json, re, sys

def q(s):
    return "'" + s + "'"

def documented(r):
    """Every key docs/coreio-bench.1 lists for the line mode, each of its type."""
    for key in ("mode", "connections", "threads", "size", "depth", "duration_s", "requests",
                "requests_per_s", "errors", "error_kinds", "templates", "seed", "bytes_in",
                "bytes_out", "latency_us"):
        assert key in r, "no key " + key
    assert r["mode"] == "line", r["mode"]
    kinds = r["error_kinds"]
    assert set(kinds) == {"connect", "closed", "bad_response", "unexpected"}, kinds
    assert r["errors"] == sum(kinds.values()), (r["errors"], kinds)
    assert set(r["latency_us"]) == {"p50", "p99", "p999", "max"}, r["latency_us"]

def counts_agree(r, d):
    """
    The server answered every line it got, and the bench completed every request
    but those in flight at the end. Those may also be lost on the way: closing a
    socket with replies unread resets the connection, and the peer's kernel then
    drops what its server had not read yet.
    """
    lines = sum(len(c["lines"]) for c in d["conns"])
    answered = sum(c["responses"] + c["held"] for c in d["conns"])
    got = sum(len(l) + 1 for c in d["conns"] for l in c["lines"]) + sum(
        c["partial"] for c in d["conns"])
    in_flight = r["connections"] * r["depth"]
    assert d["open"] == 0, "clients still connected at the dump"
    assert answered == lines, ("answered", answered, "of", lines)
    assert got <= r["bytes_out"] <= got + in_flight * r["size"], ("out", r["bytes_out"], got)
    assert r["bytes_in"] <= sum(c["bytes_out"] for c in d["conns"]), "more in than answered"
    assert lines - in_flight <= r["requests"] <= lines, ("requests", r["requests"], lines)
    return in_flight

try:
    r = json.load(open(sys.argv[1]))
    d = json.load(open(sys.argv[2]))
    err = open(sys.argv[3]).read()
    documented(r)
    exec(sys.argv[4])
except Exception as e:
    print("check failed:", repr(e))
    sys.exit(1)
PY
        bad "$name: $(head -c 600 "$tmp/out.json") $(head -c 600 "$tmp/err")"
    fi
}

# ---- the templates, as the server received them ---------------------------

if run_line "templates" 0 "$port" -c 5 -t 2 -p 3 --no-pin -d 300ms \
    --line 'SET k{rand:7} v{n} c{conn} z{rand:1}' --line 'GET k{rand:7} v{n} c{conn}' \
    --line 'DEL {{k}} v{n} c{conn}'; then
    check "{n} unique and contiguous, {conn} per connection, {rand:N} in range, in turn" lines '
forms = [re.compile(p) for p in (r"SET k(?P<k>\d+) v(?P<n>\d+) c(?P<c>\d+) z(?P<z>\d+)",
                                 r"GET k(?P<k>\d+) v(?P<n>\d+) c(?P<c>\d+)",
                                 r"DEL \{k\} v(?P<n>\d+) c(?P<c>\d+)")]
assert r["requests"] > 0 and r["errors"] == 0, r
assert r["templates"] == 3 and r["seed"] == 1 and r["depth"] == 3 and r["threads"] == 2, r
assert r["size"] == 54, r["size"]  # SET: 5 + 1 + 2 + 20 + 2 + 20 + 2 + 1 bytes and its "\n"
assert len(d["conns"]) == 5, "connections: %d" % len(d["conns"])
ns, keys, conn_ids = [], set(), []
for c in d["conns"]:
    conn_n, conn_c = [], set()
    for i, line in enumerate(c["lines"]):
        m = forms[i % 3].fullmatch(line)
        assert m, "line %d of a connection is not template %d: %r" % (i, i % 3, line)
        g = {name: int(v) for name, v in m.groupdict().items()}
        if "k" in g:
            keys.add(g["k"])
        assert g.get("z", 0) == 0, line
        conn_n.append(g["n"])
        conn_c.add(g["c"])
    assert conn_n == sorted(set(conn_n)), "{n} not increasing on one connection"
    assert len(conn_c) == 1, "{conn} changes on one connection: %s" % conn_c
    ns += conn_n
    conn_ids += conn_c
lost = counts_agree(r, d)  # at most this many requests at the end, see counts_agree
assert len(set(ns)) == len(ns), "{n} not unique"
assert max(ns) < len(ns) + lost, "{n} skips %d numbers" % (max(ns) + 1 - len(ns))
assert sorted(conn_ids) == [0, 1, 2, 3, 4], conn_ids
assert keys <= set(range(7)), "{rand:7} out of range: %s" % keys
assert len(ns) < 300 or keys == set(range(7)), "{rand:7} never drew some values: %s" % keys
'
fi

# --seed: the same seed gives the same draws (1 is the default), another does not.
for seed in default 1 2; do
    args=()
    [ "$seed" = default ] || args=(--seed "$seed")
    if run_line "seed $seed" 0 "$port" -c 1 -d 200ms --line 'R {rand:1000000000}' "${args[@]}"; then
        "$py" "$tmp/lines.py" dump "$port" >"$tmp/seed-$seed.json"
    fi
done
if "$py" - "$tmp"/seed-default.json "$tmp"/seed-1.json "$tmp"/seed-2.json <<'PY'; then
import json, sys
a, b, c = ([l for conn in json.load(open(f))["conns"] for l in conn["lines"]] for f in sys.argv[1:])
n = min(len(a), len(b), len(c))
assert n >= 10, "too few requests to compare: %d" % n
assert a[:n] == b[:n], "the default seed is not 1"
assert a[:n] != c[:n], "--seed 2 draws what --seed 1 does"
assert len(set(a[:n])) > n // 2, "the draws repeat: %s" % a[:n]
PY
    pass "--seed: the same seed draws the same keys, the default is 1, another differs"
else
    bad "--seed: draws not reproducible as documented"
fi

# ---- responses -------------------------------------------------------------

if run_line "--expect" 1 "$port" -c 3 -p 4 -d 300ms --expect OK --line 'GET {n}' --line 'ERR {n}'; then
    check "--expect: every ERR response counted, the exit status 1, the first described" lines '
u, R, C = r["error_kinds"]["unexpected"], r["requests"], r["connections"]
# In order on each connection, half of what completed (rounded down) was ERR.
assert R > 0 and (R - C) / 2 <= u <= R / 2, (R, u)
assert r["errors"] == u, r
assert "first error (unexpected response): a response not starting with %s: %s" % (q("OK"), q("ERR")) in err, err
counts_agree(r, d)
'
fi

if run_line "split responses" 0 "$port" -c 2 -p 4 -d 300ms --expect 'OK SPLIT' --line 'SPLIT {n}'; then
    check "responses split inside the prefix and between \\r and \\n complete in order" lines '
assert r["requests"] > 0 and r["errors"] == 0, r
counts_agree(r, d)
'
fi

if run_line "pipelining" 0 "$port" -c 2 -p 4 -d 300ms --expect OK --line 'HOLD 4 {n}'; then
    check "-p 4 keeps 4 requests in flight: the server answers only whole batches" lines '
assert r["requests"] > 0 and r["errors"] == 0 and r["depth"] == 4, r
assert [c["max_held"] for c in d["conns"]] == [4, 4], [c["max_held"] for c in d["conns"]]
counts_agree(r, d)
'
fi

if run_line "a 65536-byte line" 0 "$port" -c 1 -d 200ms --expect x --line 'LEN 65536'; then
    check "a response line of 65536 bytes and CRLF is accepted" lines '
assert r["requests"] > 0 and r["errors"] == 0, r
counts_agree(r, d)
'
fi

if run_line "a 65537-byte line" 1 "$port" -c 1 -d 1s --line 'LEN 65537'; then
    check "a response line over 65536 bytes is a bad response that closes the connection" lines '
assert r["requests"] == 0 and r["error_kinds"]["bad_response"] >= 1, r
assert r["errors"] == r["error_kinds"]["bad_response"], r
assert "first error (bad response): a response line longer than 65536 bytes" in err, err
# Closed and opened again 100 ms later, within the second.
assert len(d["conns"]) >= 2, "connections: %d" % len(d["conns"])
'
fi

if run_line "two responses" 1 "$port" -c 1 -d 300ms --line 'TWICE {n}'; then
    check "a response line never asked for is a bad response" lines '
assert r["error_kinds"]["bad_response"] >= 1 and r["errors"] == r["error_kinds"]["bad_response"], r
assert "first error (bad response): a response line never asked for" in err, err
'
fi

# ---- against coreiod's echo service: each response is its request ----------

if run_line "echo" 0 "$echo_port" -c 4 -t 2 -p 8 --no-pin -d 300ms --expect 'SET key' \
    --line 'SET key{rand:10000} v{n}' --line 'SET key{rand:10000} {conn}'; then
    check "coreiod echo: every response as expected, bytes back as sent" coreiod '
assert r["requests"] > 0 and r["errors"] == 0 and r["threads"] == 2, r
in_flight = r["connections"] * r["depth"] * r["size"]
assert r["bytes_out"] - in_flight <= r["bytes_in"] <= r["bytes_out"], r
'
fi

if run_line "echo, wrong prefix" 1 "$echo_port" -c 2 -d 200ms --expect PONG --line 'PING {n}'; then
    check "coreiod echo with --expect PONG: every response unexpected" coreiod '
assert r["requests"] > 0 and r["error_kinds"]["unexpected"] == r["requests"] == r["errors"], r
assert "a response not starting with %s: %s" % (q("PONG"), q("PING ")[:-1]) in err, err
'
fi

# The longest request a template may make goes through echo and back.
long=$(head -c 65535 /dev/zero | tr '\0' 'y')
if run_line "echo, 65536-byte lines" 0 "$echo_port" -c 1 -d 200ms --expect yy --line "${long}{rand:10}"; then
    check "coreiod echo: 65536-byte request lines come back whole" coreiod '
assert r["requests"] > 0 and r["errors"] == 0 and r["size"] == 65537, r
'
fi

"$bench" --mode line -c 1 -d 200ms --expect 'SET' --line 'SET {n}' 127.0.0.1 "$echo_port" \
    >"$tmp/out" 2>"$tmp/err"
status=$?
if [ $status -eq 0 ] && grep -qE '^coreio-bench: line 127\.0\.0\.1:[0-9]+, 1 connection' "$tmp/out" &&
    grep -qE '^  requests  [1-9][0-9]* ' "$tmp/out" && grep -qF 'unexpected 0)' "$tmp/out" &&
    grep -qF "expect    responses starting with 'SET'" "$tmp/out"; then
    pass "the text report names the mode, the requests and the unexpected count"
else
    bad "text report: exit status $status: $(cat "$tmp/out" "$tmp/err")"
fi

# ---- usage errors ----------------------------------------------------------

# usage_error WHAT ARGS...: exit status 2 before any run, stderr saying WHAT (fixed text).
usage_error() {
    local what=$1
    shift
    "$bench" "$@" >"$tmp/out" 2>"$tmp/err"
    local status=$?
    if [ $status -eq 2 ] && grep -qF -- "$what" "$tmp/err" && grep -q "usage" "$tmp/err" &&
        [ ! -s "$tmp/out" ]; then
        pass "exit 2: $what"
    else
        bad "$*: exit status $status, stderr: $(cat "$tmp/err")"
    fi
}
target=(127.0.0.1 "$port")
usage_error "option --line: 'GET {n': the '{' at column 5 is never closed" \
    --mode line --line 'GET {n' "${target[@]}"
usage_error "option --line: 'GET {key}': unknown substitution '{key}' at column 5" \
    --mode line --line 'GET {key}' "${target[@]}"
usage_error "'{rand:{n}' at column 1: write {rand:N}" --mode line --line '{rand:{n}}' \
    "${target[@]}"
usage_error "the '}' at column 6 closes nothing (write }} for a literal })" \
    --mode line --line 'GET k}' "${target[@]}"
usage_error "'{rand:0}' at column 6: write {rand:N} with N a whole number from 1 to" \
    --mode line --line 'GET k{rand:0}' "${target[@]}"
usage_error "'{rand}' at column 1: write {rand:N}" --mode line --line '{rand}' "${target[@]}"
usage_error "'{rand:18446744073709551616}' at column 1" \
    --mode line --line '{rand:18446744073709551616}' "${target[@]}"
usage_error "'{rand:-5}' at column 1" --mode line --line '{rand:-5}' "${target[@]}"
usage_error "option --line: 'A\\nB': a line end at column 2" \
    --mode line --line $'A\nB' "${target[@]}"
usage_error "its requests can be 65537 bytes long, more than 65536" \
    --mode line --line "${long}yy" "${target[@]}"
usage_error "--mode line: no request template" --mode line "${target[@]}"
usage_error "option --line: only with --mode line" --line 'GET {n}' "${target[@]}"
usage_error "option --expect: only with --mode line" --mode http --expect OK "${target[@]}"
usage_error "option --expect: 'OK\\r' holds a line end" \
    --mode line --line x --expect $'OK\r' "${target[@]}"
usage_error "option --seed: '-1' is not a whole number from 0 to 18446744073709551615" \
    --mode line --line x --seed -1 "${target[@]}"
usage_error "option --seed: '18446744073709551616'" \
    --mode line --line x --seed 18446744073709551616 "${target[@]}"
usage_error "option --mode: unknown mode 'lines' (echo, udp, http or line)" \
    --mode lines --line x "${target[@]}"
# The greatest values are taken.
if run_line "greatest seed and bound" 0 "$port" -c 1 -d 50ms --seed 18446744073709551615 \
    --line 'R {rand:18446744073709551615}'; then
    check "--seed 2^64-1 and {rand:2^64-1} are taken" lines '
assert r["seed"] == 18446744073709551615 and r["errors"] == 0, r
assert all(0 <= int(l[2:]) < 2**64 - 1 for c in d["conns"] for l in c["lines"]), d
'
fi

exit $fail
