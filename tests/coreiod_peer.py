#!/usr/bin/env python3
"""tests/coreiod_peer.py: the clients tests/coreiod.sh drives coreiod with.

Each subcommand prints what it saw and exits 0 when coreiod behaved as
coreiod(8) says, 1 (with a line starting "error:") when it did not. Every wait
is bounded. Loopback only.

  ports N                    N port numbers free for both TCP and UDP now
  metrics FILE W L1,L2,...   validate Prometheus text (format 0.0.4) with W
                             workers and listeners L1, L2, ...
  counter FILE NAME          the sum of a metric's series in FILE
  pipeline PORT              keep-alive and pipelined requests to http-hello
  load PORT PID              SIGTERM under echo load: nothing sent is lost
  idle PORT PID              SIGTERM with an idle connection: forced close
  reload PORT_A PORT_B LOG   HTTP keep-alive on A across a SIGHUP reload,
                             while a connection to B (removed) drains
  refused PORT               new TCP connections to PORT are refused
"""
import asyncio
import math
import os
import re
import signal
import socket
import sys
import time

HOST = "127.0.0.1"
BODY = b"Hello, World!\n"


def die(msg):
    print("error: " + msg, flush=True)
    sys.exit(1)


# ---- ports ------------------------------------------------------------------------


def ports(n):
    """Ports free now for TCP and UDP both; all held until every one is chosen."""
    held, out = [], []
    while len(out) < n:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((HOST, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((HOST, port))
        except OSError:
            t.close()
            u.close()
            continue
        held += [t, u]
        out.append(port)
    print(" ".join(map(str, out)))
    for s in held:
        s.close()


# ---- Prometheus text format ----------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    r"^(%s)(?:\{((?:%s)(?:,%s)*,?)?\})? ([^ ]+)(?: (-?[0-9]+))?$" % (NAME, LABEL, LABEL))
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
PER_WORKER = [
    "coreio_loop_iterations_total", "coreio_loop_callbacks_total", "coreio_loop_ready",
    "coreio_loop_lag_seconds", "coreio_mailbox_depth", "coreio_executor_jobs",
    "coreio_bytes_in_total", "coreio_bytes_out_total", "coreio_connections_accepted_total",
]
PER_LISTENER = ["coreio_listener_connections_active",
                "coreio_listener_connections_accepted_total"]


def parse_value(text):
    if text in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(text.replace("Inf", "inf"))
    if not re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", text):
        raise ValueError(text)
    return float(text)


def family(name, types):
    """The metric family a sample name belongs to (histogram/summary suffixes)."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse_metrics(text):
    """{name: {frozenset(labels): value}}, types, helps; or errors."""
    errors, types, helps, series = [], {}, {}, {}
    done, current = set(), None
    if not text.endswith("\n"):
        errors.append("the text does not end with a newline")
    for no, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s)(?: (.*))?$" % NAME, line)
            if not m:
                if re.match(r"^#\s*(HELP|TYPE)\b", line):
                    errors.append("line %d: malformed %r" % (no, line))
                continue
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ""
            table = types if kind == "TYPE" else helps
            if name in table:
                errors.append("line %d: second # %s for %s" % (no, kind, name))
            if name in series:
                errors.append("line %d: # %s for %s after its samples" % (no, kind, name))
            if kind == "TYPE" and rest not in TYPES:
                errors.append("line %d: bad type %r for %s" % (no, rest, name))
            table[name] = rest
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append("line %d: not a sample line: %r" % (no, line))
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = parse_value(value)
        except ValueError:
            errors.append("line %d: bad value %r" % (no, value))
            continue
        fam = family(name, types)
        if fam not in types:
            errors.append("line %d: %s has no # TYPE before it" % (no, name))
        if fam != current:
            if fam in done:
                errors.append("line %d: samples of %s are not grouped together" % (no, fam))
            if current:
                done.add(current)
            current = fam
        pairs = LABEL_RE.findall(labels)
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            errors.append("line %d: a label given twice: %r" % (no, line))
        key = frozenset(pairs)
        if key in series.setdefault(name, {}):
            errors.append("line %d: duplicate series %r" % (no, line))
        series[name][key] = v
        if types.get(fam) == "counter" and not (v >= 0 or math.isnan(v)):
            errors.append("line %d: negative counter %r" % (no, line))
    return series, types, helps, errors


def read_metrics(path):
    with open(path, encoding="utf-8") as f:
        return parse_metrics(f.read())


def metrics(path, workers, listeners):
    series, types, helps, errors = read_metrics(path)
    want_workers = {str(i) for i in range(workers)}
    for name in PER_WORKER:
        if name not in types or name not in helps:
            errors.append("%s has no # HELP or no # TYPE" % name)
        got = [dict(k).get("worker") for k in series.get(name, {})]
        if sorted(got) != sorted(want_workers):
            errors.append("%s: worker labels %s, expected exactly one series for each of %s"
                          % (name, sorted(got, key=str), sorted(want_workers)))
    for name in PER_LISTENER:
        if name not in types or name not in helps:
            errors.append("%s has no # HELP or no # TYPE" % name)
        got = {(dict(k).get("listener"), dict(k).get("worker")) for k in series.get(name, {})}
        for lst in listeners:
            for w in want_workers:
                if (lst, w) not in got:
                    errors.append('%s{listener="%s",worker="%s"} is missing' % (name, lst, w))
    for name, t in types.items():
        if name.endswith("_total") and t != "counter":
            errors.append("%s ends in _total but is a %s" % (name, t))
    for e in errors:
        print("error: " + e)
    if errors:
        sys.exit(1)
    print("valid: %d metrics, %d series" % (len(types), sum(map(len, series.values()))))


def counter(path, name, label=None):
    series, _, _, errors = read_metrics(path)
    total = 0.0
    for k, v in series.get(name, {}).items():
        if label is None or ("listener", label) in k:
            total += v
    print("%d" % total)


# ---- HTTP ---------------------------------------------------------------------------


async def http_response(r):
    """One response from a stream: (status, headers dict, body)."""
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for h in lines[1:]:
        if h:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await r.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def pipeline(port):
    r, w = await asyncio.open_connection(HOST, port)
    for i in range(3):  # keep-alive: one request at a time on one connection
        w.write(REQUEST)
        st, _, body = await asyncio.wait_for(http_response(r), 5)
        if st != 200 or body != BODY:
            die("keep-alive request %d: %d %r" % (i, st, body))
    w.write(REQUEST * 5)  # pipelining: five requests in one write
    for i in range(5):
        st, _, body = await asyncio.wait_for(http_response(r), 5)
        if st != 200 or body != BODY:
            die("pipelined request %d: %d %r" % (i, st, body))
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st, h, body = await asyncio.wait_for(http_response(r), 5)
    rest = await asyncio.wait_for(r.read(), 5)
    if st != 200 or body != BODY or rest != b"":
        die("Connection: close request: %d %r, then %r instead of EOF" % (st, body, rest))
    w.close()
    print("ok: 3 keep-alive, 5 pipelined and 1 closing request answered")


# ---- SIGTERM under load -----------------------------------------------------------------


async def load(port, pid, nconn=20, run_for=0.5):
    stop = asyncio.Event()
    conns = []
    for i in range(nconn):
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        conns.append({"i": i, "r": r, "w": w, "sent": 0, "recv": 0, "bad": None, "eof": False})

    async def writer(c):
        while not stop.is_set():
            if c["sent"] - c["recv"] > 2000:  # bound what is in flight
                await asyncio.sleep(0.001)
                continue
            batch = b"".join(b"%d %d\n" % (c["i"], c["sent"] + k) for k in range(50))
            c["w"].write(batch)
            c["sent"] += 50
            await c["w"].drain()

    async def reader(c):
        while True:
            line = await c["r"].readline()
            if not line:
                c["eof"] = True
                return
            if line != b"%d %d\n" % (c["i"], c["recv"]):
                c["bad"] = c["bad"] or "expected line %d, got %r" % (c["recv"], line)
            c["recv"] += 1

    readers = [asyncio.ensure_future(reader(c)) for c in conns]
    writers = [asyncio.ensure_future(writer(c)) for c in conns]
    await asyncio.sleep(run_for)
    os.kill(pid, signal.SIGTERM)  # while lines are in flight
    t0 = time.monotonic()
    in_flight = sum(c["sent"] - c["recv"] for c in conns)
    sent_at_kill = sum(c["sent"] for c in conns)
    stop.set()
    await asyncio.gather(*writers)
    while time.monotonic() - t0 < 5:
        if all(c["recv"] >= c["sent"] or c["eof"] for c in conns):
            break
        await asyncio.sleep(0.01)
    waited = time.monotonic() - t0
    for c in conns:
        c["w"].close()
    for t in readers:
        t.cancel()
    sent = sum(c["sent"] for c in conns)
    recv = sum(c["recv"] for c in conns)
    print("sent %d lines on %d connections (%d in flight at SIGTERM, %d more after it), "
          "%d echoed, all within %.2fs of SIGTERM"
          % (sent, nconn, in_flight, sent - sent_at_kill, recv, waited))
    for c in conns:
        if c["bad"]:
            die("connection %d: %s" % (c["i"], c["bad"]))
        if c["recv"] != c["sent"]:
            die("connection %d: sent %d lines, %d echoed%s" % (
                c["i"], c["sent"], c["recv"], " (then EOF)" if c["eof"] else ""))
    if sent == 0:
        die("no line was sent")


# ---- SIGTERM with an idle connection ------------------------------------------------------


async def idle(port, pid):
    r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
    w.write(b"hi\n")
    if await asyncio.wait_for(r.readline(), 5) != b"hi\n":
        die("no echo before SIGTERM")
    t0 = time.time()
    os.kill(pid, signal.SIGTERM)
    print("sigterm_at %.6f" % t0, flush=True)
    await asyncio.sleep(0.3)
    w.write(b"still here\n")  # an open connection is still served while draining
    try:
        line = await asyncio.wait_for(r.readline(), 1)
    except (asyncio.TimeoutError, ConnectionError) as e:
        die("no echo 0.3 s into the drain: %r" % e)
    if line != b"still here\n":
        die("echo 0.3 s into the drain: %r" % line)
    # Listeners stop accepting: a new connection is refused, or never served.
    try:
        r2, w2 = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1)
        w2.write(b"new\n")
        try:
            late = await asyncio.wait_for(r2.readline(), 0.3)
        except (asyncio.TimeoutError, ConnectionError):
            late = b""
        w2.close()
        if late:
            die("a connection made during the drain was served: %r" % late)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    try:  # then nothing more: coreiod closes the connection at drain_timeout
        rest = await asyncio.wait_for(r.read(), 4)
    except ConnectionError:
        rest = b""
    except asyncio.TimeoutError:
        die("connection still open 4 s after SIGTERM")
    print("closed_after %.3f%s" % (time.time() - t0, " (with data %r)" % rest if rest else ""))
    w.close()


# ---- SIGHUP reload ----------------------------------------------------------------------


def log_has(path, text):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return text in f.read()
    except OSError:
        return False


async def reload(port_a, port_b, log, nconn=4, min_run=2.0):
    stats = {"ok": 0, "fail": 0, "after": 0, "errors": []}
    reloaded = asyncio.Event()
    done = asyncio.Event()

    async def client(i):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port_a), 5)
            while not done.is_set():
                after = reloaded.is_set()
                w.write(REQUEST)
                st, _, body = await asyncio.wait_for(http_response(r), 5)
                if st != 200 or body != BODY:
                    raise ValueError("answer %d %r" % (st, body))
                stats["ok"] += 1
                stats["after"] += after
            w.close()
        except Exception as e:  # any failure of a request on A counts
            stats["fail"] += 1
            stats["errors"].append("connection %d: %r" % (i, e))

    # A connection to B, the listener the new file removes.
    rb, wb = await asyncio.wait_for(asyncio.open_connection(HOST, port_b), 5)
    wb.write(b"before\n")
    if await asyncio.wait_for(rb.readline(), 5) != b"before\n":
        die("no echo from listener B before the reload")
    tasks = [asyncio.ensure_future(client(i)) for i in range(nconn)]
    await asyncio.sleep(0.2)
    print("running", flush=True)
    t0 = time.monotonic()
    while not log_has(log, "coreiod: reloaded") and time.monotonic() - t0 < 8:
        await asyncio.sleep(0.02)
    if not log_has(log, "coreiod: reloaded"):
        done.set()
        await asyncio.gather(*tasks)
        die("no 'coreiod: reloaded' in the log within 8 s")
    reloaded.set()
    # A connection opened before the reload to a removed listener drains.
    wb.write(b"after\n")
    try:
        line = await asyncio.wait_for(rb.readline(), 2)
    except (asyncio.TimeoutError, ConnectionError) as e:
        line = repr(e).encode()
    wb.close()
    # A new connection to A, the unchanged listener, after the reload.
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port_a), 5)
        w.write(REQUEST)
        st, _, body = await asyncio.wait_for(http_response(r), 5)
        w.close()
        fresh = "%d %r" % (st, body)
    except Exception as e:
        fresh = repr(e)
    await asyncio.sleep(max(0.5, min_run - (time.monotonic() - t0)))
    done.set()
    await asyncio.gather(*tasks)
    print("requests on A: %d answered (%d after the reload), %d failed"
          % (stats["ok"], stats["after"], stats["fail"]))
    for e in stats["errors"]:
        print("error: " + e)
    if stats["fail"] or stats["after"] == 0 or stats["ok"] == stats["after"]:
        die("keep-alive requests on A did not all succeed across the reload")
    if fresh != "200 %r" % BODY:
        die("new connection to A after the reload: %s" % fresh)
    if line != b"after\n":
        die("the open connection to removed listener B was not drained: got %r" % line)
    print("ok: B's open connection drained, a new connection to A answered")


def refused(port):
    """Poll up to 2 s for a refusal, then 10 connections in a row must be refused."""
    t0, streak = time.monotonic(), 0
    while streak < 10:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((HOST, port))
            streak = 0
            if time.monotonic() - t0 > 2:
                die("port %d still accepts connections 2 s after the reload" % port)
            time.sleep(0.05)
        except ConnectionRefusedError:
            streak += 1
        finally:
            s.close()
    print("ok: refused (after %.2fs)" % (time.monotonic() - t0))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "ports":
        ports(int(argv[2]))
    elif cmd == "metrics":
        metrics(argv[2], int(argv[3]), [x for x in argv[4].split(",") if x])
    elif cmd == "counter":
        counter(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif cmd == "pipeline":
        asyncio.run(pipeline(int(argv[2])))
    elif cmd == "load":
        asyncio.run(load(int(argv[2]), int(argv[3])))
    elif cmd == "idle":
        asyncio.run(idle(int(argv[2]), int(argv[3])))
    elif cmd == "reload":
        asyncio.run(reload(int(argv[2]), int(argv[3]), argv[4]))
    elif cmd == "refused":
        refused(int(argv[2]))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
