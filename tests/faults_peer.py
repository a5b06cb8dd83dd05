#!/usr/bin/env python3
"""tests/faults_peer.py: the clients tests/faults.sh puts coreiod under faults with.

Each subcommand drives one case against a running coreiod (PID), checks what
coreiod(8) promises from the outside (bytes echoed back intact, descriptors in
/proc/PID/fd, VmRSS in /proc/PID/status, log lines), prints one summary line
and exits 0, or prints lines starting "error:" and exits 1. Every wait is
bounded, and so is every subcommand as a whole. Loopback only.

A TARGET is tcp:PORT, unix:PATH or udp:PORT (on 127.0.0.1).

  ports N                           N ports free for TCP and UDP, below the
                                    ephemeral range
  exhaust PID TCP UNIX ADMIN N      N connections to each of three listeners of a
                                    coreiod with few descriptors, then release;
                                    then 2N idle admin connections held
  slowloris PID ECHO HTTP ADMIN IDLE ADMIN_WAIT
                                    one byte a second on every TCP port
  halfclose TARGET...               send, shut the write side, get it all back
  reset PID TARGET                  1 MB unread, then RST; others unaffected
  noread PID TARGET N BYTES RSS_MB  N peers send BYTES and never read
  many PID TARGET N                 N concurrent connections, one echo each
  udpflood PID TARGET N SIZE SECS RSS_MB
                                    N datagrams of SIZE bytes (at most SECS s)
  termload PID TARGET N BEFORE DEADLINE
                                    SIGTERM after BEFORE s with N clients busy
  hupload PID ADMIN CONF NEWCONF LOG SECS NAME=TARGET...
                                    SIGHUP with connections to every listener
                                    NAME on every worker, SECS s of load after
  storm PID LOG CONF A B... --- N GAP SECS RSS_MB TARGET... -- MOVED...
                                    N reloads, to B, A, C, A, ... (files A B C...),
                                    SECS s of load after
  hold TARGET FLAG                  a round trip, then another once file FLAG exists
  refused PORT                      new TCP connections to PORT are refused
  fds PID                           how many descriptors PID has open
"""
import asyncio
import os
import random
import re
import resource
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coreiod_peer as base  # noqa: E402  (ports, Prometheus parsing)

HOST = "127.0.0.1"
# Bounds on waits, generous: a machine shared with benchmarks may be slow, and what
# the cases catch are things that never happen, not late ones.
WAIT = 10  # seconds for a connection, a round trip, an answer
SETTLE = 20  # seconds for coreiod to close what its peers closed
errors = []
summary = []


def error(msg):
    errors.append(msg)
    print("error: " + msg, flush=True)


def finish(text):
    """The line to print last if no error was found."""
    summary.append(text)


# ---- the process under test --------------------------------------------------------------


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_kinds(pid):
    """What the descriptors of PID are, counted by kind, to explain a leak."""
    kinds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = re.sub(r"[:\[]\d+\]?$", "", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        kinds[t] = kinds.get(t, 0) + 1
    return ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return not re.search(r"^State:\s*Z", f.read(), re.M)
    except OSError:
        return False


async def settle_fds(pid, limit, timeout):
    """Wait up to @timeout s for PID to hold at most @limit descriptors."""
    t0 = time.monotonic()
    while True:
        n = fds(pid)
        if n <= limit or time.monotonic() - t0 > timeout:
            return n
        await asyncio.sleep(0.05)


async def baseline(pid):
    """PID's descriptors once the count has not changed for 0.3 s (at most 3 s)."""
    n, t0, last = fds(pid), time.monotonic(), time.monotonic()
    while time.monotonic() - last < 0.3 and time.monotonic() - t0 < 3:
        await asyncio.sleep(0.05)
        k = fds(pid)
        if k != n:
            n, last = k, time.monotonic()
    return n


def check_fds_back(pid, base_n, now, what):
    if now > base_n:
        error("%s: coreiod holds %d descriptors, %d before (%s)" % (what, now, base_n,
                                                                     fd_kinds(pid)))


def listening(t):
    """The inodes of the listening sockets of target @t: reopened ones get new inodes."""
    found = set()
    if t[0] == "unix":
        with open("/proc/net/unix") as f:
            for line in f.read().splitlines()[1:]:
                col = line.split()
                if len(col) >= 8 and col[-1] == t[1] and int(col[3], 16) & 0x10000:
                    found.add(int(col[6]))
        return found
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in rows:
            col = line.split()
            if col[3] == "0A" and int(col[1].rsplit(":", 1)[1], 16) == t[1]:
                found.add(int(col[9]))
    return found


def raise_nofile(n):
    """This client needs @n descriptors: raise the soft limit (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def log_count(path, text):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().count(text)
    except OSError:
        return 0


def ports(n):
    """@n ports free for TCP and UDP now, below the ephemeral range: the thousands of
    connections the cases open take their local ports from that range, and one of them
    could hold, or leave in TIME_WAIT, a port a later case listens on."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            top = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        top = 32768
    if top - 20000 < 10 * n:
        return base.ports(n)
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    out, held = [], []
    while len(out) < n:
        port = rng.randrange(20000, top)
        if port in out:
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((HOST, port))
            u.bind((HOST, port))
        except OSError:
            t.close()
            u.close()
            continue
        held += [t, u]
        out.append(port)
    print(" ".join(map(str, out)))
    for x in held:
        x.close()


# ---- clients -----------------------------------------------------------------------------


def target(spec):
    kind, _, addr = spec.partition(":")
    if kind not in ("tcp", "unix", "udp") or not addr:
        raise SystemExit("bad target %r" % spec)
    return (kind, addr if kind == "unix" else int(addr))


def name(t):
    return "%s:%s" % t


async def connect(t, timeout=WAIT):
    if t[0] == "unix":
        return await asyncio.wait_for(asyncio.open_unix_connection(t[1]), timeout)
    return await asyncio.wait_for(asyncio.open_connection(HOST, t[1]), timeout)


async def roundtrip(r, w, msg, timeout=WAIT):
    w.write(msg)
    await asyncio.wait_for(w.drain(), timeout)
    got = await asyncio.wait_for(r.readexactly(len(msg)), timeout)
    if got != msg:
        raise ValueError("sent %r, got back %r" % (msg[:40], got[:40]))


async def fresh(t, msg=b"fresh\n", timeout=WAIT):
    """One round trip on a new connection; None or what went wrong."""
    if t[0] == "udp":
        return await asyncio.get_running_loop().run_in_executor(None, udp_roundtrip, t, msg)
    try:
        r, w = await connect(t, timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return "connect to %s: %r" % (name(t), e)
    try:
        await roundtrip(r, w, msg, timeout)
        return None
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        return "round trip on a new connection to %s: %r" % (name(t), e)
    finally:
        w.close()


def udp_roundtrip(t, msg, tries=5):
    """A datagram echoed back (UDP may drop: a few tries, 0.5 s each)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        for _ in range(tries):
            s.sendto(msg, (HOST, t[1]))
            try:
                if s.recv(65536) == msg:
                    return None
            except socket.timeout:
                continue
        return "no UDP echo from %s in %d tries" % (name(t), tries)
    finally:
        s.close()


async def get_metrics(port, timeout=WAIT):
    """GET /metrics: (status, body) or (None, what went wrong)."""
    try:
        r, w = await connect(("tcp", port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return None, "connect: %r" % e
    try:
        w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = await asyncio.wait_for(r.read(), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return None, "GET /metrics: %r" % e
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d+)", head)
    return (int(m.group(1)), body.decode("utf-8", "replace")) if m else (None, repr(data[:80]))


async def metrics_ok(port, what):
    st, body = await get_metrics(port)
    if st != 200:
        error("%s: GET /metrics: %s %s" % (what, st, body if st is None else ""))
        return None
    return body


def bounded(coro, seconds):
    """Run @coro with a deadline for the whole subcommand."""
    async def main():
        try:
            await asyncio.wait_for(coro, seconds)
        except asyncio.TimeoutError:
            error("the client did not finish within %d s" % seconds)
    asyncio.run(main())


# ---- 1. descriptor exhaustion ------------------------------------------------------------


def open_nonblocking(t):
    """Start a connection to @t without waiting; None if refused at once."""
    fam = socket.AF_UNIX if t[0] == "unix" else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    rc = s.connect_ex(t[1] if t[0] == "unix" else (HOST, t[1]))
    if rc not in (0, 115):  # 115: EINPROGRESS
        s.close()
        return None
    return s


async def exhaust(pid, tcp, unix, admin, n):
    raise_nofile(4 * n + 200)
    targets = [("tcp", tcp), ("unix", unix)]
    for t in targets:  # what coreiod sets up on first use is in the baseline
        e = await fresh(t)
        if e:
            error("before: " + e)
    await metrics_ok(admin, "before")
    base_n = await baseline(pid)
    early = [await connect(("tcp", tcp)) for _ in range(10)]
    for i, (r, w) in enumerate(early):
        await roundtrip(r, w, b"early %d\n" % i)
    held, refused = [], 0
    for t in targets + [("tcp", admin)]:
        for _ in range(n):
            s = open_nonblocking(t)
            held += [s] if s else []
            refused += 0 if s else 1
    peak, t0 = fds(pid), time.monotonic()
    while time.monotonic() - t0 < 2:  # let coreiod accept what it can
        await asyncio.sleep(0.1)
        peak = max(peak, fds(pid))
    with open("/proc/%d/limits" % pid) as f:
        limit = f.read()
    m = re.search(r"Max open files\s+(\d+)", limit)
    for i, (r, w) in enumerate(early):  # served while at the limit
        try:
            await roundtrip(r, w, b"at the limit %d\n" % i)
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            error("an open connection was not served at the descriptor limit: %r" % e)
            break
    for s in held:
        s.close()
    for r, w in early:
        w.close()
    if not alive(pid):
        error("coreiod died at the descriptor limit")
        return finish("")
    now = await settle_fds(pid, base_n, SETTLE)
    check_fds_back(pid, base_n, now, "%d s after the clients closed" % SETTLE)
    for t in targets:
        e = await fresh(t)
        if e:
            error("after the release: " + e)
    await metrics_ok(admin, "after the release")
    idle = await idle_admin(pid, targets, admin, 2 * n)
    now2 = await settle_fds(pid, base_n, SETTLE)
    check_fds_back(pid, base_n, now2, "%d s after the idle admin clients closed" % SETTLE)
    finish("%d connections opened (%d refused at once) against a limit of %s descriptors, "
           "coreiod peaked at %d; open ones served at the limit; back to %d descriptors "
           "(baseline %d); new echo (tcp, unix) and GET /metrics answered; %s"
           % (len(held) + len(early), refused, m.group(1) if m else "?", peak, now, base_n,
              idle))


async def idle_admin(pid, targets, admin, n):
    """@n admin connections that send nothing, held: the echo listeners must still get
    the descriptors they need for new connections, and the admin port answer."""
    held = [s for s in (open_nonblocking(("tcp", admin)) for _ in range(n)) if s]
    await asyncio.sleep(0.5)
    peak = fds(pid)
    t0 = time.monotonic()
    *echoes, (st, body) = await asyncio.gather(*[fresh(t, timeout=2 * WAIT) for t in targets],
                                               get_metrics(admin, 2 * WAIT))
    for e in echoes:
        if e:
            error("with %d idle admin connections held: %s" % (len(held), e))
    if st != 200:
        error("with %d idle admin connections held: GET /metrics: %s %s" % (len(held), st,
                                                                          body))
    took = time.monotonic() - t0
    for s in held:
        s.close()
    return ("with %d idle admin connections held (coreiod at %d descriptors), new echo and "
            "GET /metrics answered in %.1f s" % (len(held), peak, took))


# ---- 2. slowloris ------------------------------------------------------------------------


async def slow_client(t, first, filler, seconds, out):
    """Send @first then one byte of @filler a second; out: seconds until closed, or None."""
    t0 = time.monotonic()
    try:
        r, w = await connect(t)
    except (OSError, asyncio.TimeoutError) as e:
        out.append(("connect", repr(e)))
        return
    closed = asyncio.Event()

    async def reader():
        try:
            while await r.read(4096):
                pass
        except OSError:
            pass
        closed.set()

    rt = asyncio.ensure_future(reader())
    data = first + filler * 1000
    i = 0
    while time.monotonic() - t0 < seconds and not closed.is_set():
        try:
            w.write(data[i:i + 1])
        except (OSError, RuntimeError):
            break
        i += 1
        try:
            await asyncio.wait_for(closed.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    try:
        await asyncio.wait_for(closed.wait(), 0.5)
    except asyncio.TimeoutError:
        pass
    out.append(("closed", time.monotonic() - t0) if closed.is_set() else ("open", None))
    rt.cancel()
    w.close()


async def slowloris(pid, echo, http, admin, idle, admin_wait):
    raise_nofile(2000)
    if await metrics_ok(admin, "before") is None:
        return finish("")
    groups = [  # (what, port, how many, first bytes, filler, must close within)
        ("echo", echo, 50, b"", b"x", idle + 4),
        ("http-hello", http, 50, b"GET / HTTP/1.1\r\nX-Slow: ", b"a", idle + 4),
        ("admin", admin, 200, b"GET /metrics HTTP/1.1\r\nX-Slow: ", b"a", admin_wait + 2),
    ]
    results, tasks = {}, []
    for what, port, n, first, filler, within in groups:
        results[what] = []
        for i in range(n):
            tasks.append(asyncio.ensure_future(
                slow_client(("tcp", port), first, filler, within + 1, results[what])))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
    # The admin port answers fresh requests while the slow clients hold it (closing
    # some of them to make room is fine: they are checked for being closed).
    fresh_ok, t0 = 0, time.monotonic()
    for k in range(3):
        await asyncio.sleep(max(0.0, 1.0 + k - (time.monotonic() - t0)))
        st, body = await get_metrics(admin, 3)
        if st == 200:
            fresh_ok += 1
        else:
            error("GET /metrics %d s into the slowloris: %s %s" % (k + 1, st, body))
    e = await fresh(("tcp", echo))
    if e:
        error("during the slowloris: " + e)
    await asyncio.gather(*tasks)
    parts = []
    for what, port, n, first, filler, within in groups:
        res = results[what]
        bad = [x for x in res if x[0] != "closed" or x[1] > within]
        if bad:
            still = sum(1 for x in res if x[0] == "open")
            late = sum(1 for x in res if x[0] == "closed" and x[1] > within)
            conn = [x[1] for x in res if x[0] == "connect"]
            error("%s: %d of %d slow clients not closed by coreiod within %.1f s "
                  "(%d still open, %d closed later, %d could not connect%s)"
                  % (what, len(bad), n, within, still, late, len(conn),
                     ": " + conn[0] if conn else ""))
        else:
            parts.append("%d on %s closed after %.1f-%.1f s" % (
                n, what, min(x[1] for x in res), max(x[1] for x in res)))
            print("ok: " + parts[-1])
    if not alive(pid):
        error("coreiod died")
    finish("slow clients: %s; %d fresh GET /metrics answered while they held the admin port"
           % ("; ".join(parts), fresh_ok))


# ---- 3. half-close -----------------------------------------------------------------------


async def halfclose_one(t, size):
    blob = os.urandom(size)
    r, w = await connect(t)
    got = bytearray()

    async def reader():
        while True:
            chunk = await r.read(65536)
            if not chunk:
                return
            got.extend(chunk)

    rt = asyncio.ensure_future(reader())
    w.write(blob)
    await asyncio.wait_for(w.drain(), WAIT)
    w.write_eof()
    try:
        await asyncio.wait_for(rt, WAIT)
    except asyncio.TimeoutError:
        error("%s, %d bytes then SHUT_WR: %d bytes back and no EOF within %d s"
              % (name(t), size, len(got), WAIT))
        return
    except OSError as e:
        error("%s, %d bytes then SHUT_WR: %d bytes back, then %r" % (name(t), size, len(got), e))
        return
    finally:
        w.close()
    if bytes(got) != blob:
        error("%s, %d bytes then SHUT_WR: %d bytes back, %s" % (
            name(t), size, len(got), "a prefix" if blob.startswith(bytes(got)) else "corrupted"))


async def halfclose(targets):
    sizes = [1, 65536, 3 * 1024 * 1024]
    for t in targets:
        for size in sizes:
            await halfclose_one(t, size)
    finish("%s: %s bytes sent then SHUT_WR, all came back intact, then EOF" % (
        " and ".join(name(t) for t in targets), ", ".join(map(str, sizes))))


# ---- 4. reset in mid-write ---------------------------------------------------------------


async def steady(t, n, stop, stats):
    """@n connections doing closed-loop round trips until @stop."""
    async def one(i):
        try:
            r, w = await connect(t)
        except (OSError, asyncio.TimeoutError) as e:
            stats["fail"] += 1
            stats["errors"].append("connect: %r" % e)
            return
        seq = 0
        try:
            while not stop.is_set():
                await roundtrip(r, w, b"steady %d %d\n" % (i, seq))
                seq += 1
                stats["ok"] += 1
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            stats["fail"] += 1
            stats["errors"].append("%s connection %d, round trip %d: %r" % (name(t), i, seq, e))
        finally:
            w.close()
    return [asyncio.ensure_future(one(i)) for i in range(n)]


def rst_writer(t, size):
    """Send up to @size bytes without reading, then close with SO_LINGER 0 (a RST)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # coreiod's echo stalls
    s.settimeout(5)
    s.connect((HOST, t[1]))
    s.setblocking(False)
    blob, sent, t0 = b"r" * size, 0, time.monotonic()
    while sent < size and time.monotonic() - t0 < 0.3:
        try:
            sent += s.send(blob[sent:])
        except BlockingIOError:
            time.sleep(0.005)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return sent


async def reset(pid, t):
    e = await fresh(t)
    if e:
        error("before: " + e)
    base_n = await baseline(pid)
    stop, stats = asyncio.Event(), {"ok": 0, "fail": 0, "errors": []}
    tasks = await steady(t, 10, stop, stats)
    loop = asyncio.get_running_loop()
    sent = []
    for _ in range(20):
        sent.append(await loop.run_in_executor(None, rst_writer, t, 1 << 20))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    for e in stats["errors"][:5]:
        error("a client beside the resets: " + e)
    if not alive(pid):
        error("coreiod died")
        return finish("")
    e = await fresh(t)
    if e:
        error("after the resets: " + e)
    now = await settle_fds(pid, base_n, SETTLE)
    check_fds_back(pid, base_n, now, "%d s after the resets" % SETTLE)
    finish("20 clients sent %d-%d KiB unread then reset; %d round trips of 10 other "
           "clients meanwhile, none failed; descriptors back to %d"
           % (min(sent) >> 10, max(sent) >> 10, stats["ok"], now))


# ---- 5. peers that never read ------------------------------------------------------------


async def noread(pid, t, n, size, rss_max):
    e = await fresh(t)
    if e:
        error("before: " + e)
    base_n, rss0 = await baseline(pid), rss_mb(pid)
    loop = asyncio.get_running_loop()
    socks, sent = [], [0] * n
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # echoes pile up in coreiod
        s.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(s, (HOST, t[1])), WAIT)
        socks.append(s)
    blob = b"n" * size
    peak, t0, last = rss0, time.monotonic(), time.monotonic()
    while time.monotonic() - last < 1.0 and time.monotonic() - t0 < 10:
        for i, s in enumerate(socks):  # send what each socket takes, never read
            while sent[i] < size:
                try:
                    k = s.send(blob[sent[i]:sent[i] + 65536])
                except BlockingIOError:
                    break
                sent[i] += k
                last = time.monotonic()
        peak = max(peak, rss_mb(pid))
        if all(x >= size for x in sent) and time.monotonic() - last > 0.3:
            break
        await asyncio.sleep(0.02)
    for _ in range(10):
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.05)
    for i in range(5):  # the others are still served
        e = await fresh(t, b"other %d\n" % i)
        if e:
            error("while %d peers did not read: %s" % (n, e))
    if peak > rss_max:
        error("VmRSS reached %.0f MB (%.0f MB before) with %d peers that do not read; "
              "the bound is %d MB" % (peak, rss0, n, rss_max))
    if peak - rss0 > sum(sent) / 2097152.0:  # back-pressure keeps it in the kernel
        error("VmRSS grew by %.0f MB, more than half the %.0f MB the peers sent: coreiod "
              "buffers what it cannot send back" % (peak - rss0, sum(sent) / 1048576.0))
    for s in socks:
        s.close()
    if not alive(pid):
        error("coreiod died")
        return finish("")
    now = await settle_fds(pid, base_n, SETTLE)
    check_fds_back(pid, base_n, now, "%d s after the peers closed" % SETTLE)
    e = await fresh(t)
    if e:
        error("after the peers closed: " + e)
    finish("%d peers sent %.1f MB in all (%.0f-%.0f KiB each) and read nothing; VmRSS "
           "%.0f MB before, at most %.0f MB (bound %d MB); others served; descriptors back "
           "to %d" % (n, sum(sent) / 1048576.0, min(sent) / 1024.0, max(sent) / 1024.0,
                      rss0, peak, rss_max, now))


# ---- 6. many concurrent connections ------------------------------------------------------


async def many(pid, t, n, batch=500):
    raise_nofile(n + 500)
    e = await fresh(t)
    if e:
        error("before: " + e)
    base_n = await baseline(pid)
    conns, failed = [], []

    async def one(i):
        try:
            r, w = await connect(t, 3 * WAIT)
        except (OSError, asyncio.TimeoutError) as e:
            failed.append("connection %d: connect: %r" % (i, e))
            return
        conns.append(w)
        try:
            await roundtrip(r, w, b"%d\n" % i, 3 * WAIT)
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            failed.append("connection %d: %r" % (i, e))

    t0 = time.monotonic()
    for k in range(0, n, batch):
        await asyncio.gather(*(one(i) for i in range(k, min(n, k + batch))))
        if len(failed) > 20:
            break
    took = time.monotonic() - t0
    held = fds(pid)
    for w in conns:
        w.close()
    for f in failed[:5]:
        error(f)
    if failed:
        error("%d of %d round trips failed" % (len(failed), n))
    if held < base_n + len(conns) - len(failed) - 2:
        error("only %d descriptors in coreiod with %d connections open (%d before)"
              % (held, len(conns), base_n))
    if not alive(pid):
        error("coreiod died")
        return finish("")
    now = await settle_fds(pid, base_n, 2 * SETTLE)
    check_fds_back(pid, base_n, now, "%d s after the %d connections closed" % (2 * SETTLE, n))
    e = await fresh(t)
    if e:
        error("after: " + e)
    finish("%d connections open at once, one echo each in %.1f s, none failed; coreiod held "
           "%d descriptors, then %d (baseline %d)" % (n, took, held, now, base_n))


# ---- 7. UDP flood ------------------------------------------------------------------------


def flood(t, n, size, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the echoes are dropped here
    s.setblocking(False)
    blob, sent, t0 = b"u" * size, 0, time.monotonic()
    addr = (HOST, t[1])
    while sent < n and time.monotonic() - t0 < seconds:
        for _ in range(min(1000, n - sent)):
            try:
                s.sendto(blob, addr)
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.0005)
    s.close()
    return sent, time.monotonic() - t0


async def udpflood(pid, t, n, size, seconds, slack):
    e = await fresh(t)
    if e:
        error("before: " + e)
    await asyncio.sleep(0.2)
    rss0 = rss_mb(pid)
    loop = asyncio.get_running_loop()
    sent, took = await loop.run_in_executor(None, flood, t, n, size, seconds)
    await asyncio.sleep(1.0)
    rss1 = rss_mb(pid)
    if not alive(pid):
        error("coreiod died")
        return finish("")
    e = await fresh(t, b"after the flood")
    if e:
        error("after the flood: " + e)
    if rss1 - rss0 > slack:
        error("VmRSS %.0f MB before the flood, %.0f MB after (more than %d MB growth)"
              % (rss0, rss1, slack))
    finish("%d datagrams of %d bytes in %.1f s; VmRSS %.1f MB before, %.1f MB after "
           "(slack %d MB); a new UDP round trip answered" % (sent, size, took, rss0, rss1, slack))


# ---- 8. SIGTERM under load ---------------------------------------------------------------

PATTERN = bytes(range(256)) * 8


def message(i, seq, size=1024):
    head = b"%d %d " % (i, seq)
    off = (i * 31 + seq) % 256
    return head + PATTERN[off:off + size - len(head)]


async def termload(pid, t, n, before, deadline):
    """@n clients in closed loops; SIGTERM after @before s while they go on; each must
    see EOF or a reset within @deadline s of it, every byte before that an echo."""
    conns = [await connect(t) for _ in range(n)]
    sigterm = {"at": None}
    res = [None] * n

    def wait():  # how long an answer may take: up to the deadline once SIGTERM is sent
        at = sigterm["at"]
        return deadline if at is None else max(0.05, at + deadline - time.time())

    async def client(i, r, w):
        seq, after = 0, 0
        while True:
            msg = message(i, seq)
            try:
                w.write(msg)
                await asyncio.wait_for(w.drain(), wait())
                got = await asyncio.wait_for(r.readexactly(len(msg)), wait())
            except asyncio.IncompleteReadError as e:
                res[i] = ("eof", seq, after, msg.startswith(e.partial), time.time())
                return
            except (ConnectionError, OSError):
                res[i] = ("reset", seq, after, True, time.time())
                return
            except asyncio.TimeoutError:
                res[i] = ("no answer", seq, after, True, time.time())
                return
            if got != msg:
                res[i] = ("corrupt", seq, after, False, time.time())
                return
            seq += 1
            after += sigterm["at"] is not None
            if sigterm["at"] and time.time() - sigterm["at"] > deadline:
                res[i] = ("still served", seq, after, True, time.time())
                return

    tasks = [asyncio.ensure_future(client(i, r, w)) for i, (r, w) in enumerate(conns)]
    await asyncio.sleep(before)
    sigterm["at"] = time.time()
    os.kill(pid, signal.SIGTERM)  # the clients go on sending
    print("sigterm_at %.6f" % sigterm["at"], flush=True)
    await asyncio.gather(*tasks)
    for _, w in conns:
        w.close()
    kinds, late = {}, {}
    for i, (how, seq, after, ok, at) in enumerate(res):
        kinds[how] = kinds.get(how, 0) + 1
        if how == "corrupt" or not ok:
            error("client %d: round trip %d came back corrupted (%s)" % (i, seq, how))
        elif how not in ("eof", "reset"):
            late[how] = late.get(how, 0) + 1
    for how, k in sorted(late.items()):
        error("%d of %d clients saw neither EOF nor a reset within %.0f s of SIGTERM (%s)"
              % (k, n, deadline, how))
    total = sum(x[1] for x in res)
    after = sum(x[2] for x in res)
    last = max(x[4] for x in res) - sigterm["at"]
    print("ok: %d round trips (%d after SIGTERM); ended by %s within %.2f s of SIGTERM" % (
        total, after, ", ".join("%s (%d)" % kv for kv in sorted(kinds.items())), last))
    finish("%d clients, %d round trips (%d after SIGTERM), every echo intact; ended by %s "
           "within %.2f s of SIGTERM" % (n, total, after, ", ".join(
               "%s (%d)" % kv for kv in sorted(kinds.items())), last))


# ---- 9. SIGHUP with connections on every worker ------------------------------------------


def per_worker(text, listener):
    series, _, _, _ = base.parse_metrics(text)
    counts = {}
    for k, v in series.get("coreio_listener_connections_active", {}).items():
        d = dict(k)
        if d.get("listener") == listener:
            counts[d.get("worker")] = int(v)
    return counts


async def spread(admin, lname, t, most=200):
    """Connections to @t until every worker has some of listener @lname's."""
    conns, counts = [], {}
    while len(conns) < most:  # the kernel or the hand-off spreads them
        for _ in range(10):
            conns.append((t, await connect(t)))
        for i, (_, (r, w)) in enumerate(conns[-10:]):
            await roundtrip(r, w, b"hello %d\n" % i)
        text = await metrics_ok(admin, "before")
        counts = per_worker(text or "", lname)
        if len(counts) > 1 and all(v > 0 for v in counts.values()):
            return conns, counts
    error("could not get connections to %s on every worker: %s" % (lname, counts))
    return conns, counts


async def hupload(pid, admin, conf, newconf, log, hold_for, named):
    conns, spreads = [], []
    for lname, t in named:
        c, counts = await spread(admin, lname, t)
        conns += c
        spreads.append("%s %s" % (lname, "/".join("%d" % v for _, v in sorted(counts.items()))))
    if errors:
        return finish("")
    stop, stats = asyncio.Event(), {"ok": 0, "fail": 0, "errors": [], "after": 0}
    reloaded = asyncio.Event()

    async def loop_on(i, t, r, w):
        seq = 0
        try:
            while not stop.is_set():
                await roundtrip(r, w, message(i, seq, 256))
                seq += 1
                stats["ok"] += 1
                stats["after"] += reloaded.is_set()
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            stats["fail"] += 1
            stats["errors"].append("%s connection %d, round trip %d: %r" % (name(t), i, seq, e))

    tasks = [asyncio.ensure_future(loop_on(i, t, r, w)) for i, (t, (r, w)) in enumerate(conns)]
    await asyncio.sleep(0.5)
    sockets = {ln: listening(t) for ln, t in named}
    before = log_count(log, "coreiod: reloaded")
    os.replace(newconf, conf)
    os.kill(pid, signal.SIGHUP)
    t0 = time.monotonic()
    while log_count(log, "coreiod: reloaded") == before and time.monotonic() - t0 < WAIT:
        if log_count(log, "reload failed"):
            break
        await asyncio.sleep(0.02)
    took = time.monotonic() - t0
    if log_count(log, "coreiod: reloaded") == before:
        error("no 'coreiod: reloaded' within %d s of SIGHUP" % WAIT)
    reloaded.set()
    fresh_errors = [e for e in [await fresh(t) for _, t in named] if e]
    await asyncio.sleep(hold_for)
    stop.set()
    await asyncio.gather(*tasks)
    for _, (_, w) in conns:
        w.close()
    for e in fresh_errors:
        error("after the reload: " + e)
    for ln, t in named:
        now = listening(t)
        if now != sockets[ln]:
            error("listener %s did not keep its listening sockets (inodes %s, then %s)"
                  % (ln, sorted(sockets[ln]), sorted(now)))
    for x in stats["errors"][:5]:
        error(x)
    if stats["fail"]:
        error("%d of %d connections to kept listeners failed across the reload"
              % (stats["fail"], len(conns)))
    if stats["after"] == 0:
        error("no round trip completed after the reload")
    finish("%d connections (per worker: %s), %d round trips (%d after 'reloaded', "
           "logged %.2f s after SIGHUP), none failed; same listening sockets; new "
           "connections answered"
           % (len(conns), ", ".join(spreads), stats["ok"], stats["after"], took))


# ---- 10. reload storm --------------------------------------------------------------------


def reload_lines(log):
    return log_count(log, "coreiod: reloaded") + log_count(log, "reload failed")


async def settle_reloads(log, quiet=1.0, timeout=20):
    """Wait until no reload has been logged for @quiet s."""
    t0, last, seen = time.monotonic(), time.monotonic(), reload_lines(log)
    while time.monotonic() - last < quiet and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.05)
        n = reload_lines(log)
        if n != seen:
            seen, last = n, time.monotonic()
    return seen


async def reload_to(pid, log, conf, src):
    n = reload_lines(log)
    with open(src, "rb") as f, open(conf + ".tmp", "wb") as g:
        g.write(f.read())
    os.replace(conf + ".tmp", conf)
    os.kill(pid, signal.SIGHUP)
    t0 = time.monotonic()
    while reload_lines(log) == n and time.monotonic() - t0 < WAIT:
        await asyncio.sleep(0.02)


async def churn(t, stop, stats):
    """New connections, one round trip each, until @stop."""
    while not stop.is_set():
        e = await fresh(t, b"churn\n")
        stats["fresh"] += 1
        if e:
            stats["fail"] += 1
            stats["errors"].append(e)
        await asyncio.sleep(0.02)


async def storm(pid, log, conf, files, n, gap, hold_for, slack, targets, moved):
    """@n reloads, cycling through @files, every one of them after the first being
    a change from the first; @targets are in every file, @moved where the first
    file says after the storm."""
    cycle = [x for f in files[1:] for x in (f, files[0])]
    fa = files[0]
    stop, stats = asyncio.Event(), {"ok": 0, "fail": 0, "fresh": 0, "errors": []}
    for src in cycle:  # warm up: what the first reloads allocate for good is in the baseline
        await reload_to(pid, log, conf, src)
    await settle_reloads(log)
    failed0 = log_count(log, "reload failed")
    tasks = []
    for t in targets:
        tasks += await steady(t, 4, stop, stats)
    await asyncio.sleep(0.3)
    fd0, rss0 = await baseline(pid), rss_mb(pid)
    sockets = [listening(t) for t in targets]
    tasks += [asyncio.ensure_future(churn(t, stop, stats)) for t in targets]
    lines0, t0 = reload_lines(log), time.monotonic()
    for i in range(n):
        with open(cycle[i % len(cycle)], "rb") as f, open(conf + ".tmp", "wb") as g:
            g.write(f.read())
        os.replace(conf + ".tmp", conf)
        os.kill(pid, signal.SIGHUP)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * gap - time.monotonic()))
        if not alive(pid):
            error("coreiod died after %d reloads" % (i + 1))
            break
    took = time.monotonic() - t0
    await settle_reloads(log)
    await reload_to(pid, log, conf, fa)  # the end state is file A, for certain
    await settle_reloads(log)
    logged = reload_lines(log) - lines0
    failed = log_count(log, "reload failed") - failed0
    await asyncio.sleep(hold_for)  # past the drains of the listeners the storm replaced
    stop.set()
    await asyncio.gather(*tasks)
    if not alive(pid):
        error("coreiod died")
        return finish("")
    fd1 = await settle_fds(pid, fd0 + 8, SETTLE)
    rss1 = rss_mb(pid)
    print("ok: %d SIGHUPs in %.1f s, %d reloads logged (%d failed); %d round trips on kept "
          "connections, %d on new ones (%d failed); descriptors %d -> %d, VmRSS %.1f -> %.1f MB"
          % (n, took, logged, failed, stats["ok"], stats["fresh"], stats["fail"], fd0, fd1,
             rss0, rss1))
    for t, before in zip(targets, sockets):
        now = listening(t)
        if now != before:
            error("the listener on %s did not keep its listening sockets (inodes %s, then %s)"
                  % (name(t), sorted(before), sorted(now)))
    for x in stats["errors"][:5]:
        error("a listener present in both files: " + x)
    if stats["fail"]:
        error("%d round trips failed on listeners present in both files" % stats["fail"])
    if failed:
        with open(log, encoding="utf-8", errors="replace") as f:
            why = [x.strip() for x in f if "reload failed" in x][-1:]
        error("%d of %d reloads failed (%s)" % (failed, logged, why[0] if why else ""))
    if fd1 > fd0 + 8:
        error("descriptors: %d before the storm, %d after (%s)" % (fd0, fd1, fd_kinds(pid)))
    if rss1 - rss0 > slack:
        error("VmRSS %.0f MB before the storm, %.0f MB after (slack %d MB)" % (rss0, rss1, slack))
    for t in moved:  # file A's listeners that moved answer where A says
        e = await fresh(t)
        if e:
            error("after the storm, file A's listener: " + e)
    finish("%d SIGHUPs in %.1f s, %d reloads logged, none failed; %d round trips on "
           "kept connections and %d on new ones, none failed; same listening sockets; "
           "descriptors %d -> %d, "
           "VmRSS %.0f -> %.0f MB" % (n, took, logged, stats["ok"], stats["fresh"], fd0, fd1,
                                      rss0, rss1))


# ---- a connection held across an event ---------------------------------------------------


async def hold(t, flag):
    """A round trip, "held", then wait (up to 100 s) for file @flag and do another."""
    r, w = await connect(t)
    await roundtrip(r, w, b"before\n")
    print("held", flush=True)
    t0 = time.monotonic()
    while not os.path.exists(flag) and time.monotonic() - t0 < 100:
        await asyncio.sleep(0.02)
    try:
        await roundtrip(r, w, b"after\n")
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        error("the connection held across the event: %r" % e)
    w.close()
    finish("the connection opened before was served after")


# ---- main --------------------------------------------------------------------------------


def main(argv):
    cmd, a = (argv[1] if len(argv) > 1 else ""), argv[2:]
    if cmd == "ports":
        ports(int(a[0]))
    elif cmd == "refused":
        base.refused(int(a[0]))
    elif cmd == "hold":
        bounded(hold(target(a[0]), a[1]), 120)
    elif cmd == "fds":
        print(fds(int(a[0])))
    elif cmd == "exhaust":
        bounded(exhaust(int(a[0]), int(a[1]), a[2], int(a[3]), int(a[4])), 120)
    elif cmd == "slowloris":
        bounded(slowloris(int(a[0]), int(a[1]), int(a[2]), int(a[3]), float(a[4]),
                          float(a[5])), 120)
    elif cmd == "halfclose":
        bounded(halfclose([target(x) for x in a]), 120)
    elif cmd == "reset":
        bounded(reset(int(a[0]), target(a[1])), 120)
    elif cmd == "noread":
        bounded(noread(int(a[0]), target(a[1]), int(a[2]), int(a[3]), int(a[4])), 120)
    elif cmd == "many":
        bounded(many(int(a[0]), target(a[1]), int(a[2])), 180)
    elif cmd == "udpflood":
        bounded(udpflood(int(a[0]), target(a[1]), int(a[2]), int(a[3]), float(a[4]),
                         int(a[5])), 120)
    elif cmd == "termload":
        bounded(termload(int(a[0]), target(a[1]), int(a[2]), float(a[3]), float(a[4])), 120)
    elif cmd == "hupload":
        named = [(x.partition("=")[0], target(x.partition("=")[2])) for x in a[6:]]
        bounded(hupload(int(a[0]), int(a[1]), a[2], a[3], a[4], float(a[5]), named), 120)
    elif cmd == "storm":
        k, j = a.index("--"), a.index("---")
        bounded(storm(int(a[0]), a[1], a[2], a[3:j], int(a[j + 1]), float(a[j + 2]),
                      float(a[j + 3]), int(a[j + 4]), [target(x) for x in a[j + 5:k]],
                      [target(x) for x in a[k + 1:]]), 180)
    else:
        print(__doc__)
        sys.exit(2)
    if errors:
        sys.exit(1)
    if summary and summary[-1]:
        print(summary[-1])


if __name__ == "__main__":
    main(sys.argv)
