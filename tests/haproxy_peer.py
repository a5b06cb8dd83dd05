#!/usr/bin/python3
"""tests/haproxy_peer.py: the clients of tests/haproxy.sh and
tests/rolling_restart.sh, on loopback.

  whoami HOST PORT [--tls SNI ALPN]  connect (through HAProxy), print
                                     "client=ADDR" (our own getsockname) and
                                     the whoami line, check one echo
  closed HOST PORT DATA              connect, send DATA (Python escapes),
                                     expect the server to close without
                                     sending a byte: prints "client=ADDR",
                                     then "closed" or "reset"; exit 1 on
                                     data or no close within 10 s
  agent HOST PORT                    what an agent-check listener answers
  hold HOST PORT OUT STOP            one connection: its whoami line into OUT,
                                     then an exchange every 0.1 s until the
                                     file STOP exists; exit 1 on any failure
                                     (a close included), printing why
  stat SOCK COMMAND                  a command on HAProxy's stats socket
  field SOCK PROXY SERVER NAME       a server's column NAME in "show stat"
                                     (status, check_status, chkfail...)
  http HOST PORT METHOD PATH         one HTTP request: "STATUS BODY"
"""
import csv
import http.client
import io
import os
import socket
import ssl
import sys
import time

TIMEOUT = 10


def addr(sa):
    """HOST:PORT as whoami writes it."""
    return f"[{sa[0]}]:{sa[1]}" if ":" in sa[0] else f"{sa[0]}:{sa[1]}"


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            raise SystemExit(f"FAIL: EOF before the whoami line (got {buf!r})")
        buf += b
    return buf


def echo(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(4096)
        if not b:
            raise SystemExit(f"FAIL: EOF after {len(got)} bytes of the echo")
        got += b
    if got != msg:
        raise SystemExit(f"FAIL: echo {got!r} for {msg!r}")


def whoami(host, port, tls=None):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    client = addr(s.getsockname())
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols([tls[1]])
        s = ctx.wrap_socket(s, server_hostname=tls[0])
    line = read_line(s)
    echo(s, b"ping\n")
    s.close()
    print(f"client={client}")
    print(line.decode().rstrip("\n"))


def closed(host, port, data):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    print(f"client={addr(s.getsockname())}")
    try:
        if data:
            s.sendall(data)
        got = s.recv(4096)
    except ConnectionResetError:
        print("reset")
        return
    except socket.timeout:
        raise SystemExit("FAIL: still open after 10 s")
    if got:
        raise SystemExit(f"FAIL: the server sent {got[:80]!r}")
    print("closed")


def hold(host, port, out, stop):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    line = read_line(s)
    with open(out + ".tmp", "wb") as f:
        f.write(line)
    os.rename(out + ".tmp", out)
    n = 0
    while not os.path.exists(stop):
        n += 1
        echo(s, f"hold {n}\n".encode())
        time.sleep(0.1)
    s.close()
    print(f"exchanges={n}")


def agent(host, port):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    out = b""
    while not out.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    print(out.decode(errors="replace").rstrip("\n"))


def stat(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    s.sendall(command.encode() + b"\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode()


def stat_field(path, proxy, server, name):
    text = stat(path, "show stat").lstrip("# ")
    for row in csv.DictReader(io.StringIO(text)):
        if row["pxname"] == proxy and row["svname"] == server:
            return row[name]
    raise SystemExit(f"FAIL: no {proxy}/{server} in show stat")


def request(host, port, method, path):
    c = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode(errors="replace").strip()
    print(f"{r.status} {body}")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "whoami" and len(argv) in (4, 7) and (len(argv) == 4 or argv[4] == "--tls"):
        whoami(argv[2], int(argv[3]), argv[5:7] if len(argv) == 7 else None)
    elif cmd == "closed" and len(argv) == 5:
        closed(argv[2], int(argv[3]), argv[4].encode().decode("unicode_escape").encode("latin-1"))
    elif cmd == "hold" and len(argv) == 6:
        hold(argv[2], int(argv[3]), argv[4], argv[5])
    elif cmd == "agent" and len(argv) == 4:
        agent(argv[2], int(argv[3]))
    elif cmd == "stat" and len(argv) == 4:
        sys.stdout.write(stat(argv[2], argv[3]))
    elif cmd == "field" and len(argv) == 6:
        print(stat_field(argv[2], argv[3], argv[4], argv[5]))
    elif cmd == "http" and len(argv) == 6:
        request(argv[2], int(argv[3]), argv[4], argv[5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
