#!/usr/bin/python3
"""tests/proxy_peer.py: the load balancer of tests/test_proxy.c, on loopback.
It builds PROXY protocol headers itself (v1 text, v2 binary with TLVs and
CRC32C, after HAProxy's doc/proxy-protocol.txt) and sends them to a coreio
server whose protocol echoes what it receives; the C side checks what the
protocol saw. Connections run one after another (each waits for its echo,
or for the server to close it), so the server sees them in this order.
Prints "OK ..." on success; exits with a message otherwise.

  headers PORT PORT6 UNIXPATH PLAIN  every kind of header, one connection
                               each (PLAIN: a server without PROXY)
  one PORT                     one v1 TCP4 header and a request
  segments PORT                headers plus request cut at every byte
                               boundary, whole, and one byte per send
  tls PORT CAFILE              a header in clear, then TLS on the same socket
  refusals PORT UNTRUSTED V1ONLY  bad peers beside one good connection
  burst PORT                   30 peers without a header at once, 1 more later
  sharded PORT                 4 connections held open, each its own client
  udp PORT                     datagrams with v2 headers (UDP4, UDP6, TLVs,
                               LOCAL), and bad ones, each followed by a good
                               one: only the good ones are answered
"""
import socket
import ssl
import struct
import sys
import time
import traceback

TIMEOUT = 10
REQ = b"hello world\n"
SIG2 = b"\r\n\r\n\x00\r\nQUIT\n"
PAUSE = 0.003  # between the two sends of a split: long enough to be read apart


def fail(msg):
    raise SystemExit("FAIL: " + msg)


# ---- headers -----------------------------------------------------------------------


def v1(proto, src=None, dst=None, sport=0, dport=0):
    if src is None:
        return b"PROXY " + proto.encode() + b"\r\n"
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(command, family, body):
    """command 0 LOCAL, 1 PROXY; family the byte (0x11 TCP4, 0x21 TCP6, 0x31 UNIX stream)."""
    return SIG2 + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


def inet(src, dst, sport, dport, family=socket.AF_INET):
    return (socket.inet_pton(family, src) + socket.inet_pton(family, dst) +
            struct.pack(">HH", sport, dport))


def unix(src, dst):
    return src.encode().ljust(108, b"\0") + dst.encode().ljust(108, b"\0")


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


UNIQUE_ID = bytes(range(0, 256, 8))  # 32 bytes, 0x00 to 0xf8
SSL_TLV = tlv(0x20, bytes([0x07]) + struct.pack(">I", 0) + tlv(0x21, b"TLSv1.3") +
              tlv(0x22, b"client.example"))
TLVS = (tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x05, UNIQUE_ID) + SSL_TLV +
        tlv(0x04, bytes(5)))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def with_crc(family, body, good=True):
    """A v2 PROXY header of body plus a CRC32C TLV (the checksum of the whole header)."""
    hdr = v2(1, family, body + tlv(0x03, bytes(4)))
    crc = crc32c(hdr) ^ (0 if good else 1)
    return hdr[:-4] + struct.pack(">I", crc)


V1_TCP4 = v1("TCP4", "192.0.2.1", "198.51.100.2", 56324, 443)
V2_TLVS = v2(1, 0x11, inet("192.0.2.10", "203.0.113.5", 1234, 8443) + TLVS)
V2_TLVS6 = v2(1, 0x21, inet("2001:db8::10", "2001:db8::20", 1234, 8443, socket.AF_INET6) + TLVS)

# ---- connections -----------------------------------------------------------------------


def connect(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    return s


def expect_echo(s, want, what):
    got = b""
    while len(got) < len(want):
        try:
            b = s.recv(len(want) - len(got))
        except OSError as e:
            fail(f"{what}: {e!r} after {got!r}")
        if not b:
            fail(f"{what}: EOF after {got!r}")
        got += b
    if got != want:
        fail(f"{what}: echo {got!r} for {want!r}")


def expect_closed(s, what):
    """The server closes without sending a byte (a reset counts as closed)."""
    try:
        b = s.recv(4096)
    except ConnectionResetError:
        b = b""
    except socket.timeout:
        fail(f"{what}: not closed within {TIMEOUT} s")
    if b:
        fail(f"{what}: got {b!r}")


def send(s, data, what):
    try:
        s.sendall(data)
    except OSError as e:
        fail(f"{what}: {e!r} while sending")


def exchange(s, data, what):
    send(s, data, what)
    expect_echo(s, REQ, what)
    s.close()


# ---- scenarios --------------------------------------------------------------------------


def headers(port, port6, path, plain):
    """One connection per header; the C side holds the same list, in this order."""
    cases = [
        ("v1 TCP4", V1_TCP4),
        ("v1 TCP6", v1("TCP6", "2001:db8::1", "2001:db8::2", 56324, 443)),
        ("v1 UNKNOWN", v1("UNKNOWN")),
        ("v1 UNKNOWN with addresses", v1("UNKNOWN", "ffff:" * 7 + "ffff", "ffff:" * 7 + "ffff",
                                         65535, 65535)),
        ("v2 TCP4", v2(1, 0x11, inet("192.0.2.10", "203.0.113.5", 1234, 8443))),
        ("v2 TCP6", v2(1, 0x21, inet("2001:db8::10", "2001:db8::20", 1234, 8443,
                                     socket.AF_INET6))),
        ("v2 UNIX stream", v2(1, 0x31, unix("/run/client.sock", "/run/haproxy.sock"))),
        ("v2 LOCAL", v2(0, 0x00, b"")),
        ("v2 LOCAL with an address block", v2(0, 0x11, inet("192.0.2.99", "203.0.113.99",
                                                             9, 9))),
        ("v2 PROXY UNSPEC", v2(1, 0x00, b"")),
        ("v2 TCP4 with TLVs", V2_TLVS),
        ("v2 TCP6 with a CRC32C", with_crc(0x21, inet("2001:db8::10", "2001:db8::20", 1234, 8443,
                                                      socket.AF_INET6) +
                                           tlv(0x02, b"crc.example"))),
    ]
    for what, hdr in cases:
        exchange(connect(port), hdr + REQ, what)
    # The largest v2 header there is (a 65535-byte body), far past the stage's inline buffer.
    big = v2(1, 0x11, inet("192.0.2.10", "203.0.113.5", 1234, 8443) + tlv(0x04, bytes(65520)))
    exchange(connect(port), big + REQ, "v2 TCP4 of the largest size")
    # A balancer's health check: LOCAL, then EOF; the server closes cleanly after it.
    s = connect(port)
    send(s, v2(0, 0x00, b""), "a health check")
    s.shutdown(socket.SHUT_WR)
    expect_closed(s, "a health check")
    s.close()
    exchange(connect(port6, "::1"), V1_TCP4 + REQ, "v1 TCP4 over ::1")
    exchange(connect_unix(path), V1_TCP4 + REQ, "v1 TCP4 over a Unix socket")
    exchange(connect(plain), REQ, "no header to a server without PROXY")
    print("OK", len(cases) + 5)


def split_everywhere(port, hdr, what):
    msg = hdr + REQ
    for i in range(1, len(msg)):
        s = connect(port)
        send(s, msg[:i], f"{what} cut at {i}")
        time.sleep(PAUSE)
        exchange(s, msg[i:], f"{what} cut at {i}")
    exchange(connect(port), msg, f"{what} whole")
    return len(msg)


def bytewise(port, hdr, what):
    s = connect(port)
    for b in hdr + REQ:
        send(s, bytes([b]), what)
        time.sleep(0.001)
    expect_echo(s, REQ, what)
    s.close()
    return 1


def segments(port):
    counts = [split_everywhere(port, V1_TCP4, "v1 TCP4"),
              split_everywhere(port, V2_TLVS6, "v2 TCP6 with TLVs"),
              bytewise(port, V2_TLVS, "v2 TCP4 with TLVs a byte at a time"),
              bytewise(port, V1_TCP4, "v1 TCP4 a byte at a time")]
    print("OK", *counts)


class Tls:
    """TLS over a socket through memory BIOs, so that the first flight can be
    sent in one write with the PROXY header before it."""

    def __init__(self, s, ctx):
        self.s, self.inc, self.out = s, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def flush(self):
        data = self.out.read()
        if data:
            self.s.sendall(data)

    def pump(self, fn):
        while True:
            try:
                r = fn()
                self.flush()
                return r
            except ssl.SSLWantReadError:
                self.flush()
                b = self.s.recv(65536)
                if not b:
                    fail("EOF inside TLS")
                self.inc.write(b)


def tls_split(port, ctx, hdr, what):
    s = connect(port)
    cut = len(hdr) // 2
    s.sendall(hdr[:cut])
    time.sleep(PAUSE)
    s.sendall(hdr[cut:])
    time.sleep(PAUSE)
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(REQ)
    expect_echo(t, REQ, what)
    t.unwrap().close()


def tls_coalesced(port, ctx, hdr, what):
    s = connect(port)
    t = Tls(s, ctx)
    try:
        t.obj.do_handshake()
        fail(f"{what}: a handshake without the server")
    except ssl.SSLWantReadError:
        pass
    s.sendall(hdr + t.out.read())  # the header and the ClientHello in one send
    t.pump(t.obj.do_handshake)
    t.obj.write(REQ)
    t.flush()
    got = b""
    while len(got) < len(REQ):
        got += t.pump(lambda: t.obj.read(4096))
    if got != REQ:
        fail(f"{what}: echo {got!r}")
    t.pump(t.obj.unwrap)
    s.close()


def tls(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    tls_split(port, ctx, V1_TCP4, "v1 split, then TLS")
    tls_split(port, ctx, V2_TLVS, "v2 with TLVs split, then TLS")
    tls_coalesced(port, ctx, V1_TCP4, "v1 and the ClientHello in one send")
    tls_coalesced(port, ctx, V2_TLVS, "v2 with TLVs and the ClientHello in one send")
    print("OK 4")


def bad(port, data, what, eof=False):
    s = connect(port)
    try:
        if data:
            s.sendall(data)
        if eof:
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # closed already: what we expect anyway
    expect_closed(s, what)
    s.close()


def refusals(port, untrusted, v1only):
    good = connect(port)
    good.sendall(v1("TCP4", "192.0.2.7", "198.51.100.7", 5555, 80) + REQ)
    expect_echo(good, REQ, "the good connection")
    n = 0

    def still():
        nonlocal n
        n += 1
        msg = b"still here %d\n" % n
        good.sendall(msg)
        expect_echo(good, msg, f"the good connection after {n} bad ones")

    bad_sig = bytearray(V2_TLVS)
    bad_sig[10] ^= 0x01
    bad_version = bytearray(V2_TLVS)
    bad_version[12] = 0x31
    # At most ten refusals a second are logged: five, a pause, then seven.
    cases = [
        (untrusted, V1_TCP4 + REQ, "a peer outside the trusted ranges", False),
        (port, v1("TCP4", "192.0.2.1", "198.51.100.2", 56324, 99999) + REQ, "malformed v1", False),
        (port, bytes(bad_sig) + REQ, "a bad v2 signature", False),
        (port, bytes(bad_version) + REQ, "v2 of version 3", False),
        (v1only, V2_TLVS + REQ, "v2 to a v1-only server", False),
        None,
        (port, b"GET / HTTP/1.0\r\n\r\n", "no header", False),
        (port, b"", "EOF before a byte", True),
        (port, V1_TCP4[:20], "EOF inside a v1 header", True),
        (port, V2_TLVS[:30], "EOF inside a v2 header", True),
        (port, b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n", "a v1 line past 107 bytes", False),
        (port, with_crc(0x11, inet("192.0.2.10", "203.0.113.5", 1234, 8443), False) + REQ,
         "a v2 header with a wrong CRC32C", False),
        (port, V1_TCP4[:20], "half a header, then nothing (the timeout)", False),
    ]
    for case in cases:
        if case is None:
            time.sleep(1.1)
            continue
        bad(case[0], case[1], case[2], case[3])
        still()
    good.close()
    print("OK", n)


def burst(port):
    socks = [connect(port) for _ in range(30)]
    for s in socks:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    for i, s in enumerate(socks):
        expect_closed(s, f"burst connection {i}")
        s.close()
    time.sleep(1.1)
    bad(port, b"GET / HTTP/1.0\r\n\r\n", "the one after the burst")
    print("OK 31")


def sharded(port):
    socks = []
    for i in range(4):
        body = inet(f"192.0.2.{i + 1}", "198.51.100.1", 40000 + i, 443)
        hdr = v1("TCP4", f"192.0.2.{i + 1}", "198.51.100.1", 40000 + i, 443) if i % 2 == 0 \
            else v2(1, 0x11, body + TLVS)
        msg = b"conn %d\n" % i
        s = connect(port)
        s.sendall(hdr + msg)
        expect_echo(s, msg, f"connection {i}")
        socks.append(s)  # held open: HANDOFF then gives the next one to the other worker
    for s in socks:
        s.close()
    print("OK 4")


# ---- datagrams ----------------------------------------------------------------------


def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(TIMEOUT)
    to = ("127.0.0.1", port)
    udp4 = v2(1, 0x12, inet("192.0.2.1", "198.51.100.2", 5353, 53))
    answered = 0

    def ask(data, want, what):
        nonlocal answered
        s.sendto(data, to)
        got, frm = s.recvfrom(4096)
        if got != want or frm != to:
            fail(f"{what}: {got!r} from {frm}, want {want!r}")
        answered += 1

    ask(udp4 + b"query1", b"src=192.0.2.1:5353 dst=198.51.100.2:53|query1", "UDP4")
    body6 = inet("2001:db8::1", "2001:db8::2", 40000, 53, socket.AF_INET6)
    ask(v2(1, 0x22, body6 + tlv(0x02, b"dns.example")) + b"q6",
        b"src=[2001:db8::1]:40000 dst=[2001:db8::2]:53 auth=dns.example|q6", "UDP6 + TLV")
    ask(v2(0, 0x00, b"") + b"ping", b"local|ping", "LOCAL")
    ask(udp4, b"src=192.0.2.1:5353 dst=198.51.100.2:53|", "a header alone")
    ask(with_crc(0x12, inet("192.0.2.9", "198.51.100.2", 1, 53)) + b"crc",
        b"src=192.0.2.9:1 dst=198.51.100.2:53|crc", "a good CRC32C")
    bad = [(b"no header at all", "no header"),
           (v1("TCP4", "192.0.2.1", "198.51.100.2", 1, 2) + b"v1", "a v1 line"),
           (v2(1, 0x11, inet("192.0.2.1", "198.51.100.2", 1, 2)) + b"tcp", "a stream's header"),
           (udp4[:20], "a header cut short"),
           (with_crc(0x12, inet("192.0.2.9", "198.51.100.2", 1, 53), good=False) + b"x",
            "a bad CRC32C")]
    for k, (data, what) in enumerate(bad):
        s.sendto(data, to)
        # Had it been answered, that answer would come before this one.
        ask(udp4 + b"after %d" % k, b"src=192.0.2.1:5353 dst=198.51.100.2:53|after %d" % k, what)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    stranger.settimeout(0.5)
    stranger.sendto(udp4 + b"stranger", to)
    ask(udp4 + b"after stranger", b"src=192.0.2.1:5353 dst=198.51.100.2:53|after stranger",
        "an untrusted sender")
    try:
        got = stranger.recv(4096)
        fail(f"the untrusted sender was answered: {got!r}")
    except socket.timeout:
        pass
    print(f"OK udp {answered}")


def main():
    try:
        run(sys.argv[1], sys.argv[2:])
    except (OSError, ssl.SSLError) as e:
        where = traceback.extract_tb(e.__traceback__)[-1]
        fail(f"{e!r} at line {where.lineno} ({where.line})")


def run(what, args):
    if what == "headers":
        headers(int(args[0]), int(args[1]), args[2], int(args[3]))
    elif what == "one":
        exchange(connect(int(args[0])), V1_TCP4 + REQ, "one")
        print("OK 1")
    elif what == "segments":
        segments(int(args[0]))
    elif what == "tls":
        tls(int(args[0]), args[1])
    elif what == "refusals":
        refusals(int(args[0]), int(args[1]), int(args[2]))
    elif what == "burst":
        burst(int(args[0]))
    elif what == "sharded":
        sharded(int(args[0]))
    elif what == "udp":
        udp(int(args[0]))
    else:
        fail("unknown scenario " + what)


main()
