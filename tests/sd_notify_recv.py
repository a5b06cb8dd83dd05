#!/usr/bin/python3
"""tests/sd_notify_recv.py: the service manager's end of sd_notify(3), for tests.

    sd_notify_recv.py [--sender] SOCKET

Binds an AF_UNIX datagram socket at SOCKET (a path, or @NAME in the abstract
namespace; a stale socket file there is replaced) and prints each datagram it
receives as one line on stdout, every '\\n' in it replaced by ';' ("READY=1\\n
STATUS=x" prints "READY=1;STATUS=x"), flushed at once, until it is killed.
With --sender each line starts with the sending process's pid and a space
(SO_PASSCRED, as systemd reads it). Once the socket is bound, it says
"sd_notify_recv: listening on SOCKET" on stderr. SIGTERM, SIGINT and SIGHUP
remove the socket file and exit 0.
"""

import os
import signal
import socket
import stat
import struct
import sys


def bind(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if path.startswith("@"):
        sock.bind("\0" + path[1:])
        return sock
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock.bind(path)
    return sock


def sender_pid(ancdata):
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return struct.unpack("iII", data[:12])[0]
    return 0


def main():
    args = sys.argv[1:]
    with_sender = bool(args) and args[0] == "--sender"
    if with_sender:
        args = args[1:]
    if len(args) != 1 or not args[0] or args[0][0] not in "/@":
        sys.stderr.write("usage: sd_notify_recv.py [--sender] SOCKET (a path or @NAME)\n")
        sys.exit(2)
    path = args[0]
    sock = bind(path)

    def leave(sig, frame):
        if not path.startswith("@"):
            try:
                os.unlink(path)
            except OSError:
                pass
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, leave)
    if with_sender:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sys.stderr.write("sd_notify_recv: listening on %s\n" % path)
    sys.stderr.flush()
    out = sys.stdout
    while True:
        data, ancdata, _, _ = sock.recvmsg(1 << 17, socket.CMSG_SPACE(12))
        line = data.decode("utf-8", "backslashreplace").replace("\n", ";")
        if with_sender:
            line = "%d %s" % (sender_pid(ancdata), line)
        try:
            out.write(line + "\n")
            out.flush()
        except BrokenPipeError:
            leave(0, None)


if __name__ == "__main__":
    main()
