#!/usr/bin/env python3
"""tests/tls_peer.py: the python3 ssl peers tests/tls_interop.sh drives the TLS
examples with (python's ssl module is OpenSSL underneath, but its client and
server logic is CPython's, nobody's here).

Each subcommand prints what it saw and exits 0 when the other side behaved,
1 (with a line starting "error:") when it did not. Every wait is bounded.
Loopback only.

  echo-client PORT CA VERSION SIZE   send SIZE random bytes to a TLS echo
                                     server, read them back while sending,
                                     compare sha256, then close with
                                     close_notify and require the server's
                                     close_notify back (unwrap, then EOF)
  echo-server CERT KEY VERSION       serve one TLS connection on a free port
                                     (printed: "listening PORT"): echo until
                                     the client's close_notify (recv returns
                                     b''), answer it, say how the client ended
  starttls PORT CA MODE              the STARTTLS dance against examples/
                                     starttls server, the ClientHello made
                                     with MemoryBIO + SSLObject; MODE "one":
                                     "STARTTLS\\r\\n" and the ClientHello in
                                     one send; "bytes": the same bytes one
                                     per send (TCP_NODELAY); "plaintext":
                                     "STARTTLS\\r\\nPLAINTEXT-AFTER", which
                                     must end the connection with no clear
                                     text after "220 go ahead"
"""
import hashlib
import os
import select
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
TIMEOUT = 20.0


def die(msg):
    print("error: " + msg, flush=True)
    sys.exit(1)


def strict(ctx, version=None):
    """CPython sets OP_IGNORE_UNEXPECTED_EOF by default, which makes a
    truncation look like close_notify: clear it, or nothing here could fail."""
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    if version:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


# ---- echo-client ------------------------------------------------------------------


def pump(s, data):
    """Send data and read as much back, both at once: an echo server that
    stops reading while its write buffer is full would deadlock a client
    that sent everything first."""
    s.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + TIMEOUT
    while len(got) < len(data):
        if time.monotonic() > deadline:
            die("timed out: sent %d, got back %d of %d" % (sent, len(got), len(data)))
        wl = [s] if sent < len(data) else []
        r, w, _ = select.select([s], wl, [], 1.0)
        if w:
            try:
                sent += s.send(data[sent : sent + 65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while True:  # drain what TLS has decrypted, not only what select sees
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not chunk:
                die("EOF after %d of %d bytes" % (len(got), len(data)))
            got += chunk
    return bytes(got)


def close_cleanly(s):
    """Our close_notify, then the server's: unwrap raises on a truncation."""
    s.setblocking(True)
    s.settimeout(TIMEOUT)
    try:
        raw = s.unwrap()
    except ssl.SSLEOFError as e:
        die("server closed without close_notify (SSLEOFError: %s)" % e)
    except (ssl.SSLError, OSError) as e:
        die("unwrap failed: %s: %s" % (type(e).__name__, e))
    if raw.recv(1) != b"":
        die("bytes after close_notify")
    raw.close()


def echo_client(port, ca, version, size):
    ctx = strict(ssl.create_default_context(cafile=ca), version)
    raw = socket.create_connection((HOST, port), timeout=TIMEOUT)
    s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    data = os.urandom(size)
    version = s.version()
    got = pump(s, data)
    want, have = hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest()
    if want != have:
        die("sha256 of the echo %s, sent %s" % (have, want))
    close_cleanly(s)
    print("%s echoed %d bytes, sha256 %s, closed cleanly" % (version, size, have))


# ---- echo-server ------------------------------------------------------------------


def echo_server(cert, key, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    strict(ctx, version)
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(1)
    ls.settimeout(TIMEOUT)
    print("listening %d" % ls.getsockname()[1], flush=True)
    conn, _ = ls.accept()
    conn.settimeout(TIMEOUT)
    s = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
    print("accepted %s" % s.version(), flush=True)
    n = 0
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            n += len(chunk)
            s.sendall(chunk)
    except ssl.SSLEOFError as e:
        die("client closed without close_notify after %d bytes (SSLEOFError: %s)" % (n, e))
    except (ssl.SSLError, OSError) as e:
        die("read failed: %s: %s" % (type(e).__name__, e))
    print("close_notify received after %d bytes" % n, flush=True)
    try:
        s.unwrap()  # our close_notify; the client need not answer it
    except (ssl.SSLError, OSError):
        pass


# ---- starttls ---------------------------------------------------------------------


class Conn:
    """A socket with the bytes read past the last line kept for TLS."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=5.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                die("EOF waiting for a line, got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, cmd, code):
        self.sock.sendall(cmd + b"\r\n")
        line = self.line()
        if not line.startswith(code):
            die("%r answered %r" % (cmd, line))
        return line


def tls_step(c, obj, inc, out, op):
    """Run op (an SSLObject call) to completion over c's socket."""
    while True:
        try:
            result = op()
        except ssl.SSLWantReadError:
            if out.pending:
                c.sock.sendall(out.read())
            chunk = c.sock.recv(65536)
            if not chunk:
                die("EOF in the middle of TLS")
            inc.write(chunk)
            continue
        if out.pending:
            c.sock.sendall(out.read())
        return result


def read_tls_line(c, obj, inc, out):
    data = b""
    while not data.endswith(b"\r\n"):
        data += tls_step(c, obj, inc, out, lambda: obj.read(65536))
    return data


def plaintext_after(c):
    """The server must treat what follows STARTTLS as TLS: the handshake fails."""
    c.sock.sendall(b"STARTTLS\r\nPLAINTEXT-AFTER")
    if c.line() != b"220 go ahead":
        die("STARTTLS not accepted")
    rest = c.buf
    try:
        while True:
            chunk = c.sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        die("the connection stayed open after a non-TLS ClientHello")
    if b"PLAINTEXT" in rest or (rest and not rest.startswith(b"\x15\x03")):
        die("clear text after 220 go ahead: %r" % rest)
    print("handshake refused, %d bytes after 220 (a TLS alert or nothing)" % len(rest))


def starttls(port, ca, mode):
    c = Conn(port)
    c.command(b"HELLO", b"250")
    if mode == "plaintext":
        return plaintext_after(c)
    ctx = strict(ssl.create_default_context(cafile=ca))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    payload = b"STARTTLS\r\n" + out.read()
    if mode == "one":
        c.sock.sendall(payload)
    else:
        for i in range(len(payload)):
            c.sock.send(payload[i : i + 1])
            time.sleep(0.0005)  # separate segments, separate reads
    if c.line() != b"220 go ahead":
        die("STARTTLS not accepted")
    inc.write(c.buf)  # the server's first TLS bytes may have come with the 220 line
    tls_step(c, obj, inc, out, obj.do_handshake)
    tls_step(c, obj, inc, out, lambda: obj.write(b"ping over TLS\r\n"))
    echo = read_tls_line(c, obj, inc, out)
    if echo != b"ping over TLS\r\n":
        die("echo over TLS %r" % echo)
    version = obj.version()
    tls_step(c, obj, inc, out, obj.unwrap)
    print("%s with %d bytes of ClientHello: echo %r, closed cleanly"
          % (version, len(payload) - 10, echo.decode().strip()))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        if cmd == "echo-client":
            echo_client(int(args[0]), args[1], args[2], int(args[3]))
        elif cmd == "echo-server":
            echo_server(args[0], args[1], args[2])
        elif cmd == "starttls":
            starttls(int(args[0]), args[1], args[2])
        else:
            die("unknown subcommand " + cmd)
    except (OSError, ssl.SSLError) as e:  # a timeout, a reset, a failed handshake
        die("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
