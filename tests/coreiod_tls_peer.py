#!/usr/bin/env python3
"""tests/coreiod_tls_peer.py: TLS clients for tests/coreiod_tls.sh.

  hold PORT CAFILE N         N TLS connections open at once, each echoing its own line
  plaintext PORT             plaintext to a TLS port: no plaintext comes back
  garbage PORT N             N failed handshakes: random bytes, plaintext HTTP, half a ClientHello
  silent PORT                connect, send nothing: seconds until the server closes
  close_notify CAFILE PID LOG ADMIN SPEC...  TLS connections, SIGTERM to PID: each must end
                             with close_notify. SPEC: http:PORT (idle after one request),
                             echo:PORT (idle), bulk:PORT:LISTENER (megabytes sent, none read:
                             once the drain deadline is logged in LOG, every byte comes back)
  fds PID                    descriptors PID has open

Exit 0 when the check holds, 1 with the reason on stderr. Loopback only.
"""
import os
import signal
import socket
import ssl
import sys
import time


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    # Python sets this by default with OpenSSL 3: a TCP end without close_notify would then
    # read as b'' too. Cleared, it raises SSLEOFError, and b'' means close_notify.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def tls_connect(port, cafile, timeout=10):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    # suppress_ragged_eofs=False: an EOF without close_notify raises SSLEOFError, not b''.
    return client_context(cafile).wrap_socket(
        raw, server_hostname="localhost", suppress_ragged_eofs=False
    )


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def hold(port, cafile, n):
    """n connections opened one after another and kept, then one echo on each."""
    conns = [tls_connect(port, cafile) for _ in range(n)]
    for i, c in enumerate(conns):
        line = b"line %d\n" % i
        c.sendall(line)
        got = recv_exactly(c, len(line))
        if got != line:
            die("connection %d echoed %r, expected %r" % (i, got, line))
    for c in conns:
        c.close()
    print("%d TLS connections echoed their own line" % n)


def read_until_closed(s, limit=10.0):
    s.settimeout(limit)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return got


def plaintext(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nhello plaintext\n")
    got = read_until_closed(s)
    s.close()
    if b"HTTP/" in got or b"Hello" in got or b"hello plaintext" in got:
        die("plaintext came back from a TLS port: %r" % got[:200])
    # A TLS alert record (content type 21) or nothing at all.
    what = "nothing" if not got else "%d bytes starting %r" % (len(got), got[:5])
    print("plaintext to the TLS port: the connection closed; it got %s back" % what)


def client_hello():
    """The first flight of a real TLS client, as bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def garbage(port, n):
    hello = client_hello()
    # (what is sent, whether to wait for the server to close): what is no TLS at all
    # the server refuses at once; the others leave in the middle of a handshake.
    kinds = [
        (lambda i: b"\x00" + os.urandom(63 + i % 512), True),
        (lambda i: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (lambda i: hello[: len(hello) // 2], False),
        (lambda i: b"\x16\x03\x01\x40\x00" + os.urandom(100), False),  # promises 16 KiB
    ]
    for i in range(n):
        what, wait = kinds[i % len(kinds)]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(what(i))
            if wait:
                read_until_closed(s, 5.0)
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
    print("%d failed handshakes" % n)


def silent(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    t0 = time.monotonic()
    read_until_closed(s, 120.0)
    print("%.1f" % (time.monotonic() - t0))


BULK = 8 << 20


def http_once(c):
    c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(1)
    length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
              if h.lower().startswith(b"content-length:")][0]
    recv_exactly(c, length)


def bytes_in(admin):
    """coreio_bytes_in_total over every worker, from the admin listener."""
    s = socket.create_connection(("127.0.0.1", admin), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    text = read_until_closed(s).decode()
    s.close()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("coreio_bytes_in_total{"))


def open_for_stop(cafile, admin, spec):
    kind, port = spec.split(":")[:2]
    c = tls_connect(int(port), cafile)
    if kind == "http":
        http_once(c)
    elif kind == "echo":
        c.sendall(b"ping\n")
        if recv_exactly(c, 5) != b"ping\n":
            die("%s: no echo before the stop" % spec)
    else:
        # Sent whole and read by the server (its write buffer holds the echo), none read here.
        before = bytes_in(admin)
        block = os.urandom(1 << 16)
        for _ in range(BULK // len(block)):
            c.sendall(block)
        deadline = time.monotonic() + 30
        while bytes_in(admin) < before + BULK and time.monotonic() < deadline:
            time.sleep(0.1)
    return c


def read_to_close_notify(spec, c, log):
    c.settimeout(30)
    want, got = 0, 0
    if spec.startswith("bulk:"):
        # Read once the drain deadline has come: the rest of the echo must still arrive.
        line = "listener %s: 1 connections still open" % spec.split(":")[2]
        deadline = time.monotonic() + 30
        while line not in open(log).read() and time.monotonic() < deadline:
            time.sleep(0.02)
        want = BULK
    try:
        while True:
            chunk = c.recv(1 << 16)
            if not chunk:
                break
            got += len(chunk)
    except ssl.SSLError as e:
        die("%s: %d bytes, then an end without close_notify (%s)" % (spec, got, e))
    except OSError as e:
        die("%s: %d bytes, then %s: %s" % (spec, got, type(e).__name__, e))
    if got != want:
        die("%s: %d bytes after SIGTERM, expected %d" % (spec, got, want))
    print("%s: %sclose_notify" % (spec, "%d bytes, then " % got if got else ""))


def close_notify(cafile, pid, log, admin, specs):
    conns = [(spec, open_for_stop(cafile, admin, spec)) for spec in specs]
    os.kill(pid, signal.SIGTERM)
    for spec, c in conns:
        read_to_close_notify(spec, c, log)


def fds(pid):
    print(len(os.listdir("/proc/%d/fd" % pid)))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "hold":
        hold(int(argv[2]), argv[3], int(argv[4]))
    elif cmd == "plaintext":
        plaintext(int(argv[2]))
    elif cmd == "garbage":
        garbage(int(argv[2]), int(argv[3]))
    elif cmd == "silent":
        silent(int(argv[2]))
    elif cmd == "close_notify":
        close_notify(argv[2], int(argv[3]), argv[4], int(argv[5]), argv[6:])
    elif cmd == "fds":
        fds(int(argv[2]))
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
