#!/usr/bin/env python3
"""tests/kv_peer.py: python3 asyncio clients of the kv example service
(examples/kv/kv.c), for tests/kv.sh. Each subcommand prints what it saw and
exits 0 only if every answer was the one expected.

  store PORT KEYS CONNS      SET key-0..key-(KEYS-1) over CONNS connections
  verify PORT KEYS CONNS     GET every key back over CONNS other connections
  hold PORT                  open a connection, SET and GET, keep it open
                             until stdin closes, then GET again on it
  incr PORT NAME N           N datagrams "INCR NAME"; the last answer is N
  send PORT LINE             one line, print the answer
"""
import asyncio
import socket
import sys


def value_of(i):
    return "v%d-%s" % (i, "x" * (i % 40))


async def session(port, lines):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    # Pipelined: every request goes out before the first answer is read.
    w.write("".join(l + "\n" for l in lines).encode())
    await w.drain()
    answers = [(await r.readline()).decode().rstrip("\n") for _ in lines]
    w.close()
    await w.wait_closed()
    return answers


async def run_many(port, keys, conns, make_line, expect):
    share = [list(range(c, keys, conns)) for c in range(conns)]
    results = await asyncio.gather(
        *(session(port, [make_line(i) for i in idx]) for idx in share))
    bad = 0
    for idx, answers in zip(share, results):
        for i, a in zip(idx, answers):
            if a != expect(i):
                bad += 1
                if bad <= 5:
                    print("mismatch for key-%d: %r" % (i, a))
    print("%d requests, %d mismatches" % (keys, bad))
    return bad == 0


async def hold(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"SET held yes\nGET held\n")
    first = [(await r.readline()).decode().strip() for _ in range(2)]
    print("before:", first, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    w.write(b"GET held\nGET key-7\n")
    after = [(await r.readline()).decode().strip() for _ in range(2)]
    print("after:", after)
    w.close()
    return first == ["STORED", "VALUE yes"] and after == ["VALUE yes", "VALUE " + value_of(7)]


def incr(port, name, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    last = None
    for _ in range(n):
        s.sendto(("INCR %s" % name).encode(), ("127.0.0.1", port))
        last = s.recvfrom(100)[0].decode().strip()
    print("last:", last)
    return last == str(n)


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "store":
        keys, conns = int(sys.argv[3]), int(sys.argv[4])
        ok = asyncio.run(run_many(port, keys, conns,
                                  lambda i: "SET key-%d %s" % (i, value_of(i)),
                                  lambda i: "STORED"))
    elif cmd == "verify":
        keys, conns = int(sys.argv[3]), int(sys.argv[4])
        ok = asyncio.run(run_many(port, keys, conns, lambda i: "GET key-%d" % i,
                                  lambda i: "VALUE " + value_of(i)))
    elif cmd == "hold":
        ok = asyncio.run(hold(port))
    elif cmd == "incr":
        ok = incr(port, sys.argv[3], int(sys.argv[4]))
    elif cmd == "send":
        print(asyncio.run(session(port, [sys.argv[3]]))[0])
        ok = True
    else:
        sys.exit("unknown command " + cmd)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
