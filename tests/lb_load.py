#!/usr/bin/python3
"""tests/lb_load.py: a bounded load on a whoami service (tests/whoami_module.c),
directly or through a load balancer, that counts every failure.

  lb_load.py [options] HOST PORT

Two kinds of clients run together until --duration seconds have passed, the
--stop-file appears, or SIGTERM or SIGINT comes:

  - --short loops, each: connect, read the whoami line, send one request
    line, expect its exact echo, close; again (after --pause seconds);
  - --long connections, each open for the whole run, sending a request and
    expecting its echo every --interval seconds. When the server closes one
    gracefully (EOF) right after a completed exchange, as whoami does when it
    drains, the client connects again: that is no failure.

A failure is a refused or reset connection, a timeout (--timeout seconds for
any one step), a missing whoami line, an EOF in the middle of an exchange, or
an echo that is short or wrong. At the end it prints one line

  ok_conns=N failed_conns=N ok_requests=N failed_requests=N

then "served: PID=N ..." (the connections each server process greeted, from
the pid= of the whoami lines) and the first failures, and exits 1 if
anything failed or nothing succeeded, else 0.
"""
import argparse
import asyncio
import collections
import os
import random
import re
import signal
import sys

PID_RE = re.compile(rb" pid=(\d+)")


class Failure(Exception):
    """One failed connection or exchange, with its reason."""


class Stats:
    def __init__(self):
        self.ok_conns = self.failed_conns = 0
        self.ok_requests = self.failed_requests = 0
        self.reasons = []
        self.served = collections.Counter()

    def fail(self, who, reason, request):
        """Count a failed connection (and its request, when one was under way)."""
        self.failed_conns += 1
        if request:
            self.failed_requests += 1
        if len(self.reasons) < 10:
            self.reasons.append(f"{who}: {reason}")

    def line(self):
        return (f"ok_conns={self.ok_conns} failed_conns={self.failed_conns} "
                f"ok_requests={self.ok_requests} failed_requests={self.failed_requests}")


def describe(exc):
    """A failure's reason in a few words."""
    if isinstance(exc, Failure):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"EOF after {len(exc.partial)} of {exc.expected} bytes"
    return f"{type(exc).__name__}: {exc}"


class Load:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.seq = 0

    async def step(self, aw):
        return await asyncio.wait_for(aw, self.args.timeout)

    async def connect(self):
        """A new connection and its whoami line."""
        r, w = await self.step(asyncio.open_connection(self.args.host, self.args.port))
        try:
            line = await self.step(r.readline())
        except BaseException:
            w.transport.abort()
            raise
        if not line.endswith(b"\n") or not line.startswith(b"peer="):
            w.transport.abort()
            raise Failure(f"no whoami line (got {line[:80]!r})")
        m = PID_RE.search(line)
        self.stats.served[m.group(1).decode() if m else "?"] += 1
        return r, w

    async def exchange(self, r, w, who):
        """One request line and its echo."""
        self.seq += 1
        pad = "x" * random.randrange(self.args.size)
        msg = f"{who} {self.seq} {pad}\n".encode()
        w.write(msg)
        echo = await self.step(r.readexactly(len(msg)))
        if echo != msg:
            raise Failure(f"wrong echo: sent {msg[:40]!r}, got {echo[:40]!r}")
        self.stats.ok_requests += 1

    async def short(self, i):
        who = f"short{i}"
        while not self.stop.is_set():
            request = False
            try:
                r, w = await self.connect()
                try:
                    request = True
                    await self.exchange(r, w, who)
                    request = False
                finally:
                    w.close()
                await self.step(w.wait_closed())
                self.stats.ok_conns += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, Failure) as e:
                self.stats.fail(who, describe(e), request)
            await self.pause(self.args.pause)

    async def pause(self, seconds):
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def idle(self, r):
        """Wait about --interval; True if the server closed gracefully meanwhile."""
        delay = self.args.interval * random.uniform(0.8, 1.2)
        try:
            data = await asyncio.wait_for(r.read(1), delay)
        except asyncio.TimeoutError:
            return False
        if data:
            raise Failure(f"unexpected data between exchanges: {data!r}")
        return True

    async def long(self, i):
        who = f"long{i}"
        while not self.stop.is_set():
            request = False
            w = None
            try:
                r, w = await self.connect()
                graceful = False
                while not self.stop.is_set() and not graceful:
                    request = True
                    await self.exchange(r, w, who)
                    request = False
                    graceful = await self.idle(r)
                w.close()
                await self.step(w.wait_closed())
                self.stats.ok_conns += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, Failure) as e:
                if w:
                    w.transport.abort()
                self.stats.fail(who, describe(e), request)
                await self.pause(self.args.pause)

    async def watch(self):
        """Set stop at the deadline or when the stop file appears."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.args.duration if self.args.duration else None
        while not self.stop.is_set():
            if end is not None and loop.time() >= end:
                break
            if self.args.stop_file and os.path.exists(self.args.stop_file):
                break
            await self.pause(0.05)
        self.stop.set()

    async def run(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        if self.args.ready_file:
            with open(self.args.ready_file, "w") as f:
                f.write(f"{os.getpid()}\n")
        clients = [self.short(i) for i in range(self.args.short)]
        clients += [self.long(i) for i in range(self.args.long)]
        await asyncio.gather(self.watch(), *clients)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--short", type=int, default=8, help="short-connection loops (8)")
    ap.add_argument("--long", type=int, default=8, help="long connections (8)")
    ap.add_argument("--duration", type=float, default=0, help="seconds; 0: until stopped")
    ap.add_argument("--stop-file", help="stop once this file exists")
    ap.add_argument("--ready-file", help="write the pid here once running")
    ap.add_argument("--interval", type=float, default=0.1, help="long exchanges' period (0.1)")
    ap.add_argument("--pause", type=float, default=0.02, help="short loops' pause (0.02)")
    ap.add_argument("--size", type=int, default=64, help="request padding, at most (64)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds per step (10)")
    args = ap.parse_args()
    if args.short < 0 or args.long < 0 or args.short + args.long == 0 or args.size < 1:
        ap.error("need at least one client, and --size >= 1")
    load = Load(args)
    asyncio.run(load.run())
    s = load.stats
    print(s.line(), flush=True)
    print("served: " + " ".join(f"{p}={n}" for p, n in sorted(s.served.items())))
    for reason in s.reasons:
        print(f"failure: {reason}")
    failed = s.failed_conns or s.failed_requests or not s.ok_requests
    if not s.ok_requests:
        print("failure: no request succeeded")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
