#!/usr/bin/python3
"""bench/soak_load.py: the parts of bench/soak.sh's load that coreio-bench and
wrk do not cover, and its small probes. Standard library only.

    soak_load.py load --seconds S --unix PATH --discard HOST:PORT --metrics HOST:PORT
    soak_load.py echo-once HOST PORT     one TCP echo round trip, exit 0 if it came back
    soak_load.py refused HOST PORT       exit 0 if a TCP connect is refused
    soak_load.py metrics HOST:PORT       GET /metrics; print "lag lag_max transports"

"load" runs for S seconds (or until SIGINT or SIGTERM: then it reports the
counts so far and exits with 1), paced so that it adds traffic, not a CPU hog:
  - echo over the Unix socket PATH: 2 connections, each sending messages of
    1 to 16384 bytes (a fixed cycle) 200 times a second and checking that
    every byte comes back in order;
  - discard over TCP: 2 connections, each sending 16 KiB 100 times a second;
    at the end each half-closes and expects the server to close too, having
    sent nothing;
  - the admin listener: GET /metrics twice a second on a new connection, which
    must answer 200 with the loop-lag gauge in it.
Every failure (a connection refused, reset or closed early, a wrong byte, a
bad HTTP answer, a timeout of 5 s) counts; the first 5 are described on
stderr. It prints one JSON line of counts and exits with 1 if anything
failed or a kind of traffic completed nothing.
"""
import json
import signal
import socket
import sys
import threading
import time

TIMEOUT = 5.0
SIZES = (1, 100, 1024, 4000, 16384, 512, 7)

lock = threading.Lock()
counts = {"unix_echo_requests": 0, "discard_bytes": 0, "metrics_requests": 0, "failures": 0}


def fail(what):
    with lock:
        counts["failures"] += 1
        if counts["failures"] <= 5:
            print("soak_load.py: %s" % what, file=sys.stderr, flush=True)


def add(key, n):
    with lock:
        counts[key] += n


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def recv_exactly(sock, n):
    parts = []
    while n > 0:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise ConnectionError("closed by the server")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def paced(deadline, rate):
    """Yield until the deadline, rate times a second (later if the work is slower)."""
    step = 1.0 / rate
    t = time.monotonic()
    while t < deadline:
        yield
        t += step
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            t = time.monotonic()


def unix_echo(path, deadline, rate):
    pattern = bytes((i * 7 + 3) & 0xFF for i in range(max(SIZES)))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(path)
            i = 0
            for _ in paced(deadline, rate):
                msg = pattern[: SIZES[i % len(SIZES)]]
                s.sendall(msg)
                if recv_exactly(s, len(msg)) != msg:
                    raise ValueError("echoed bytes differ from those sent")
                add("unix_echo_requests", 1)
                i += 1
    except (OSError, ValueError) as e:
        fail("unix echo on %s: %s" % (path, e))


def discard(addr, deadline, rate):
    chunk = b"d" * 16384
    try:
        with socket.create_connection(addr, timeout=TIMEOUT) as s:
            for _ in paced(deadline, rate):
                s.sendall(chunk)
                add("discard_bytes", len(chunk))
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) != b"":
                raise ValueError("the discard service sent bytes back")
    except (OSError, ValueError) as e:
        fail("discard on %s:%d: %s" % (addr[0], addr[1], e))


def get_metrics(addr):
    """The body of GET /metrics, or an exception."""
    with socket.create_connection(addr, timeout=TIMEOUT) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError("answer %r" % head[:40])
    return body.decode("ascii", "replace")


def metrics_loop(addr, deadline, rate):
    for _ in paced(deadline, rate):
        try:
            if "coreio_loop_lag_seconds{" not in get_metrics(addr):
                raise ValueError("no coreio_loop_lag_seconds in the answer")
            add("metrics_requests", 1)
        except (OSError, ValueError) as e:
            fail("GET /metrics on %s:%d: %s" % (addr[0], addr[1], e))


def run_load(args):
    opts = dict(zip(args[::2], args[1::2]))
    deadline = time.monotonic() + float(opts["--seconds"])
    jobs = [(unix_echo, opts["--unix"], 200)] * 2
    jobs += [(discard, hostport(opts["--discard"]), 100)] * 2
    jobs += [(metrics_loop, hostport(opts["--metrics"]), 2)]
    threads = [threading.Thread(target=f, args=(a, deadline, r), daemon=True) for f, a, r in jobs]
    for t in threads:
        t.start()
    stopped = False
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # in slices, so that SIGINT or SIGTERM gets through
    except KeyboardInterrupt:
        stopped = True  # the counts so far; the daemon threads end with the process
    print(json.dumps(counts), flush=True)
    done = all(counts[k] > 0 for k in ("unix_echo_requests", "discard_bytes", "metrics_requests"))
    return 0 if counts["failures"] == 0 and done and not stopped else 1


def echo_once(host, port):
    msg = b"soak-moving-listener"
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
            s.sendall(msg)
            return 0 if recv_exactly(s, len(msg)) == msg else 1
    except OSError:
        return 1


def refused(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT):
            return 1
    except ConnectionRefusedError:
        return 0
    except OSError:
        return 1


def metrics_summary(addr):
    """Max over workers of the lag and worst-lag gauges, and the transports open."""
    vals = {"coreio_loop_lag_seconds": 0.0, "coreio_loop_lag_max_seconds": 0.0}
    transports = 0
    for line in get_metrics(hostport(addr)).splitlines():
        name, _, rest = line.partition("{")
        if name in vals:
            vals[name] = max(vals[name], float(rest.split()[-1]))
        elif name == "coreio_transports":
            transports += int(rest.split()[-1])
    print("%.6f %.6f %d" % (vals["coreio_loop_lag_seconds"],
                            vals["coreio_loop_lag_max_seconds"], transports))
    return 0


def stop(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    # Both by hand: a shell starts a background job with SIGINT ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    cmd, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    try:
        if cmd == "load" and len(args) == 8:
            return run_load(args)
        if cmd == "echo-once" and len(args) == 2:
            return echo_once(*args)
        if cmd == "refused" and len(args) == 2:
            return refused(*args)
        if cmd == "metrics" and len(args) == 1:
            return metrics_summary(args[0])
    except (OSError, ValueError, KeyError) as e:
        print("soak_load.py %s: %s" % (cmd, e), file=sys.stderr)
        return 1
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
