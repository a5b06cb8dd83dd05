#!/usr/bin/python3
"""bench/handover_run.py: how long a coreiod hand-over (SIGUSR2, issue 14) takes,
and what a naive restart costs instead.

    /usr/bin/python3 bench/handover_run.py COREIOD [--rounds K] [--workers 1,2]
                                           [--listeners 1,8]

For each shape (W workers x L listeners) coreiod runs a configuration of L
echo listeners on 127.0.0.1 (balance = reuseport, so W x L listening
sockets), admin off, drain_timeout 1s, workers on CPUs 0 (and 1), with
--pid-file. A prober thread (pinned to CPU 1 when it can be) starts a
connection to the next listener every millisecond without waiting for the
ones in flight (non-blocking sockets), sends "ping\\n" and checks the echo.
Each probe ends ok, refused (connect refused), delayed (answered, but after
more than 0.2 s: a dropped SYN is sent again after 1 s) or failed (reset,
closed early, wrong echo, no answer within 5 s).

Then K hand-overs: SIGUSR2 to the serving process and, polling every
millisecond (time.monotonic), the time until the new process serves (the
pid file names it: it writes the file once it has answered the old one; or,
should the file be gone, the old one's log line "process N serves now",
written when the answer comes) and until the old process has exited. Then
K naive restarts: SIGTERM, wait for the exit, start the same program (the
first process's /proc exe, arguments and environment, as a hand-over does)
and wait for its pid file. The blackout of a round is the time from the
first probe that was not ok to the first ok one after the last such probe
(0 when all were ok). From the coreiod log: the sockets handed over ("took
N of our M listening sockets"); and after each hand-over the script checks
that the pid file still names the new process ("pid file lost" otherwise).

Output: two Markdown tables, min / median / max in ms over the K rounds.
Lines of the coreiod log that are not INFO go to stderr. Every process
started here, and every one they start, is stopped before the end (the
script makes itself a child subreaper so that orphaned coreiods stay its
children). The exit status is 1 if a hand-over or restart failed. About
50 s with the defaults (4 shapes, K = 10).
"""
import argparse
import ctypes
import errno
import os
import re
import selectors
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
POLL = 0.001
DEADLINE = 20.0  # seconds for one hand-over or restart before it counts as failed
PROBE_TIMEOUT = 5.0  # longer than a dropped SYN's first retry (1 s) and second (3 s)
SLOW = 0.2  # seconds after which an answered probe counts as delayed


def free_ports(n):
    """n TCP ports in 20000..29999 that no socket uses (as bench/lib.sh's free_port)."""
    used = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                for line in f.readlines()[1:]:
                    used.add(int(line.split()[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    start = 20000 + os.getpid() % 10000
    ports = []
    for i in range(10000):
        p = 20000 + (start - 20000 + i) % 10000
        if p not in used:
            ports.append(p)
            if len(ports) == n:
                return ports
    raise RuntimeError("no free ports")


def alive(pid):
    """Whether pid runs; a child of ours that has exited is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "X"
    if state not in ("Z", "X"):
        return True
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return False


def describe(pid):
    """pid's state and its threads' kernel wait channels, for a message."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        chans = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                chans.append(f.read())
        return f"process {pid} in state {state}, threads waiting in {', '.join(chans)}"
    except OSError:
        return f"process {pid} gone"


def send(pid, sig):
    """Signal pid, never 0 or a group: a missing pid file must not signal ourselves."""
    if pid <= 0:
        raise RuntimeError(f"no process to send signal {sig} to (the pid file is empty or gone)")
    os.kill(pid, sig)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def wait_until(cond, deadline=DEADLINE):
    """Poll cond every POLL seconds; the time.monotonic() it first held, or None."""
    end = time.monotonic() + deadline
    while True:
        now = time.monotonic()
        if cond():
            return now
        if now > end:
            return None
        time.sleep(POLL)


class Probe:
    """One connection of the prober: connect, send "ping\\n", read the echo."""

    def __init__(self, port):
        self.t0 = time.monotonic()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.reading = False
        self.got = b""
        self.err = self.sock.connect_ex(("127.0.0.1", port))

    def step(self):
        """Go on after a readiness event: None while not done, else the outcome."""
        if not self.reading:  # writable: connected, or refused
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return "refused" if err == errno.ECONNREFUSED else "failed"
            self.reading = True
            try:
                return None if self.sock.send(b"ping\n") == 5 else "failed"
            except OSError:
                return "failed"
        try:
            more = self.sock.recv(5 - len(self.got))
        except BlockingIOError:
            return None
        except OSError:
            return "failed"
        self.got += more
        if not more or not b"ping\n".startswith(self.got):
            return "failed"
        return "ok" if self.got == b"ping\n" else None


class Prober(threading.Thread):
    """Starts a probe to the next port every POLL seconds, without waiting for the ones
    in flight (a connect whose SYN was dropped waits a second for its retry):
    (start, end, outcome) per probe, outcome ok, refused, delayed (answered after
    SLOW seconds) or failed (reset, closed, wrong echo, no answer in PROBE_TIMEOUT)."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.events = []
        self.stopping = threading.Event()
        self.oldest = None  # the start of the oldest probe in flight

    def finish(self, sel, probe, outcome):
        sel.unregister(probe.sock)
        probe.sock.close()
        t1 = time.monotonic()
        if outcome == "ok" and t1 - probe.t0 > SLOW:
            outcome = "delayed"
        self.events.append((probe.t0, t1, outcome))

    def start_one(self, sel, port):
        probe = Probe(port)
        if probe.err not in (0, errno.EINPROGRESS):
            probe.sock.close()
            outcome = "refused" if probe.err == errno.ECONNREFUSED else "failed"
            self.events.append((probe.t0, time.monotonic(), outcome))
            return
        sel.register(probe.sock, selectors.EVENT_WRITE, probe)

    def run(self):
        try:
            os.sched_setaffinity(0, {1})  # this thread only: the load's CPU
        except OSError:
            pass
        sel = selectors.DefaultSelector()
        i = 0
        due = time.monotonic()
        while not self.stopping.is_set() or sel.get_map():
            now = time.monotonic()
            if not self.stopping.is_set() and now >= due:
                self.start_one(sel, self.ports[i % len(self.ports)])
                i += 1
                due = max(due + POLL, now - POLL)
            wait = 0.01 if self.stopping.is_set() else max(0.0, due - time.monotonic())
            for key, _ in sel.select(wait):
                probe = key.data
                was_reading = probe.reading
                outcome = probe.step()
                if outcome:
                    self.finish(sel, probe, outcome)
                elif probe.reading and not was_reading:
                    sel.modify(probe.sock, selectors.EVENT_READ, probe)
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                if now - key.data.t0 > PROBE_TIMEOUT:
                    self.finish(sel, key.data, "failed")
            starts = [k.data.t0 for k in sel.get_map().values()]
            self.oldest = min(starts) if starts else None

    def window(self, t0, t1):
        """The probes started in [t0, t1], once none of them is in flight."""
        wait_until(lambda: self.oldest is None or self.oldest > t1, PROBE_TIMEOUT + 1)
        return sorted(e for e in list(self.events) if t0 <= e[0] <= t1)


def blackout(events):
    """ms from the first probe not served at once to the first one served after the last."""
    bad = [i for i, e in enumerate(events) if e[2] != "ok"]
    if not bad:
        return 0.0
    after = [e for e in events[bad[-1] + 1:] if e[2] == "ok"]
    end = after[0][0] if after else events[-1][1]
    return 1000 * (end - events[bad[0]][0])


class Shape:
    """One configuration: its coreiod processes, their log, and the rounds' figures."""

    def __init__(self, coreiod, workers, listeners, tmp):
        self.coreiod, self.workers, self.listeners = coreiod, workers, listeners
        self.dir = tempfile.mkdtemp(prefix=f"w{workers}l{listeners}.", dir=tmp)
        self.ports = free_ports(listeners)
        self.ini = os.path.join(self.dir, "coreio.ini")
        self.pidfile = os.path.join(self.dir, "coreiod.pid")
        self.log = os.path.join(self.dir, "coreiod.log")
        self.exe = self.env = None
        self.pid = 0  # the process that serves now
        self.lost = 0  # hand-overs after which the pid file no longer named the new process
        self.argv = [coreiod, "-c", self.ini, "--pid-file", self.pidfile]
        cores = ",".join(str(c) for c in range(workers))
        lines = ["[global]", f"workers = {workers}", "placement = list", f"cores = {cores}",
                 "admin = off", "drain_timeout = 1s", "log_level = info", ""]
        for i, port in enumerate(self.ports):
            lines += [f"[listener echo{i}]", "service = echo",
                      f"address = 127.0.0.1:{port}", "balance = reuseport", ""]
        with open(self.ini, "w") as f:
            f.write("\n".join(lines))

    def spawn(self, argv, env=None):
        """Start coreiod in a session of its own, its output appended to the log."""
        with open(self.log, "ab") as log:
            actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                       (os.POSIX_SPAWN_DUP2, log.fileno(), 2)]
            return os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                                  file_actions=actions, setsid=True)

    def start(self):
        pid = self.pid = self.spawn(self.argv)
        if wait_until(lambda: read_pid(self.pidfile) == pid and alive(pid), 10.0) is None:
            raise RuntimeError(f"coreiod did not start: {self.tail()}")
        # What a hand-over runs: the program as the kernel names it, with our environment.
        self.exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/environ", "rb") as f:
            self.env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        return pid

    def logged_new(self, offset):
        """The process the old one's log says serves now (past @p offset), or 0."""
        with open(self.log, "rb") as f:
            f.seek(offset)
            m = re.search(rb"upgrade: process (\d+) serves now", f.read())
        return int(m.group(1)) if m else 0

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-5:])
        except OSError:
            return ""

    def log_lines(self):
        with open(self.log, errors="replace") as f:
            return f.readlines()


def handover(shape, prober):
    """One SIGUSR2: (ms until the new process serves, ms until the old one exited, probes)."""
    old = shape.pid
    log_at = os.path.getsize(shape.log)
    t0 = time.monotonic()
    send(old, signal.SIGUSR2)
    serves = exited = None

    def both():  # each moment noted when first seen, whichever comes first
        nonlocal serves, exited
        now, named = time.monotonic(), read_pid(shape.pidfile) or shape.logged_new(log_at)
        if serves is None and named not in (0, old):
            serves, shape.pid = now, named
        if exited is None and not alive(old):
            exited = now
        return serves is not None and exited is not None

    if wait_until(both) is None:
        raise RuntimeError(f"hand-over of {old} did not finish ({describe(old)}; new process "
                           f"{'serves' if serves else 'not serving'}): {shape.tail()}")
    time.sleep(0.05)  # probes after the end, to see that the new process answers
    if read_pid(shape.pidfile) != shape.pid:  # the old process took the new one's file away
        shape.lost += 1
    return 1000 * (serves - t0), 1000 * (exited - t0), prober.window(t0, time.monotonic())


def restart(shape, prober):
    """One naive restart: (ms until the new process serves, blackout ms, probes)."""
    old = shape.pid
    t0 = time.monotonic()
    send(old, signal.SIGTERM)
    if wait_until(lambda: not alive(old)) is None:
        raise RuntimeError(f"{old} did not stop: {shape.tail()}")
    argv = [shape.exe] + shape.argv[1:]
    shape.pid = shape.spawn(argv, shape.env)
    serves = wait_until(lambda: read_pid(shape.pidfile) == shape.pid)
    if serves is None:
        raise RuntimeError(f"the restarted coreiod did not serve: {shape.tail()}")
    time.sleep(0.05)
    events = prober.window(t0, time.monotonic())
    return 1000 * (serves - t0), blackout(events), events


def spread(values):
    return "%.1f / %.1f / %.1f" % (min(values), statistics.median(values), max(values))


def counts(events):
    n = {"ok": 0, "refused": 0, "delayed": 0, "failed": 0}
    for e in events:
        n[e[2]] += 1
    return n


def run_shape(coreiod, workers, listeners, rounds, tmp):
    shape = Shape(coreiod, workers, listeners, tmp)
    shape.start()
    prober = Prober(shape.ports)
    prober.start()
    try:
        time.sleep(0.2)
        hs = [handover(shape, prober) for _ in range(rounds)]
        rs = [restart(shape, prober) for _ in range(rounds)]
    finally:
        prober.stopping.set()
        prober.join()
        if alive(shape.pid):
            send(shape.pid, signal.SIGTERM)
            wait_until(lambda: not alive(shape.pid), 10.0)
    taken = re.findall(r"took (\d+) of our (\d+) listening sockets", "".join(shape.log_lines()))
    for line in shape.log_lines():
        if ": INFO: " not in line:
            sys.stderr.write(f"coreiod (W={workers}, L={listeners}): {line}")
    return {"shape": (workers, listeners), "taken": taken, "handovers": hs, "restarts": rs,
            "lost": shape.lost}


def probe_cells(rounds):
    """Probe counts and the longest probe over @p rounds (each ending with its probes)."""
    events = [e for r in rounds for e in r[-1]]
    n = counts(events)
    longest = 1000 * max(e[1] - e[0] for e in events) if events else 0
    return "%d / %d / %d / %d | %.1f" % (n["ok"], n["refused"], n["delayed"], n["failed"], longest)


def print_tables(results, rounds):
    print(f"## Issue 14: hand-over vs naive restart ({time.strftime('%Y-%m-%d', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, {rounds} rounds each; ms as min / median / max)")
    print()
    print("| workers | listeners | sockets taken / sent (log) | new process serves ms "
          "| old process exited ms | blackout ms | probes ok / refused / delayed / failed "
          "| longest probe ms | pid file lost |")
    print("|---:|---:|---|---|---|---|---|---:|---:|")
    for r in results:
        hs = r["handovers"]
        taken = ", ".join(sorted(set(f"{n} / {m}" for n, m in r["taken"]))) or "-"
        print("| %d | %d | %s | %s | %s | %s | %s | %d |" % (
            *r["shape"], taken, spread([h[0] for h in hs]), spread([h[1] for h in hs]),
            spread([blackout(h[2]) for h in hs]), probe_cells(hs), r["lost"]))
    print()
    print("Naive restart (SIGTERM, exit, start):")
    print()
    print("| workers | listeners | new process serves ms | blackout ms "
          "| probes ok / refused / delayed / failed | longest probe ms |")
    print("|---:|---:|---|---|---|---:|")
    for r in results:
        rs = r["restarts"]
        print("| %d | %d | %s | %s | %s |" % (
            *r["shape"], spread([x[0] for x in rs]), spread([x[1] for x in rs]), probe_cells(rs)))


def our_children():
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        pids.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def cleanup(tmp):
    """SIGKILL whatever of ours still runs (children, and orphans that came to us as
    subreaper), reap it, and remove the temporary directory."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        pids = our_children()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            alive(pid)  # reaps it if it is gone already
        time.sleep(0.01)
    for root, dirs, files in os.walk(tmp, topdown=False):
        for f in files:
            os.unlink(os.path.join(root, f))
        for d in dirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("coreiod")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--listeners", default="1,8")
    a = ap.parse_args()
    if not os.access(a.coreiod, os.X_OK):
        sys.exit(f"handover_run.py: {a.coreiod} is not executable")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    tmp = tempfile.mkdtemp(prefix="handover.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status = 0
    results = []
    try:
        for w in [int(x) for x in a.workers.split(",")]:
            for n in [int(x) for x in a.listeners.split(",")]:
                try:
                    results.append(run_shape(a.coreiod, w, n, a.rounds, tmp))
                except RuntimeError as e:
                    sys.stderr.write(f"handover_run.py: W={w}, L={n}: {e}\n")
                    status = 1
    finally:
        cleanup(tmp)
    print_tables(results, a.rounds)
    return status


if __name__ == "__main__":
    sys.exit(main())
