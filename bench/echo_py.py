#!/usr/bin/python3
"""TCP echo server on asyncio or uvloop, for the echo benchmark (bench/echo_run.sh).

    /usr/bin/python3 bench/echo_py.py --loop asyncio|uvloop [--cert PEM --key PEM] PORT
    /usr/bin/python3 bench/echo_py.py --loop asyncio|uvloop --udp PORT

Listens on 127.0.0.1:PORT and echoes every byte back, the way the asyncio
documentation's echo server does: a Protocol whose data_received() calls
transport.write(data).  Prints "listening" once the server accepts
connections and exits with status 0 on SIGTERM or SIGINT.

Like bench/echo_epoll.c it stops reading a connection while that
connection's unsent data is above the transport's high-water mark
(pause_writing/resume_writing), and it sets TCP_NODELAY on every connection
(asyncio does by default; this makes it explicit for uvloop too).

With --udp it is a UDP echo endpoint instead (a DatagramProtocol whose
datagram_received() calls transport.sendto(data, addr)), for bench/udp_run.sh.

With --cert and --key it speaks TLS (ssl.create_default_context for
clients, the loop's own TLS transport), for bench/tls_run.sh.
"""

import argparse
import asyncio
import signal
import socket
import ssl
import sys


# Open connections' transports, closed on shutdown.
transports = set()


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport
        transports.add(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        transports.discard(self.transport)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


class UdpEchoProtocol(asyncio.DatagramProtocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def serve_udp(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    transport, _ = await loop.create_datagram_endpoint(UdpEchoProtocol,
                                                       local_addr=("127.0.0.1", port))
    print("listening", flush=True)
    await stop
    transport.close()
    await asyncio.sleep(0)


async def serve(port, tls):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port,
                                      reuse_address=True, backlog=128, ssl=tls)
    print("listening", flush=True)
    await stop
    server.close()
    for transport in list(transports):
        transport.abort()
    # Let the loop run the connection_lost() callbacks before it closes.
    await asyncio.sleep(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--cert", help="TLS: the certificate chain (PEM)")
    ap.add_argument("--key", help="TLS: its private key (PEM)")
    ap.add_argument("--udp", action="store_true", help="a UDP echo endpoint")
    ap.add_argument("port", type=int)
    args = ap.parse_args()
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    if args.udp and args.cert:
        ap.error("--udp has no TLS")
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    if args.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve_udp(args.port) if args.udp else serve(args.port, tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
