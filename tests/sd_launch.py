#!/usr/bin/python3
"""tests/sd_launch.py: start a command socket-activated, as systemd does.

    sd_launch.py [--notify SOCKET] --listen NAME=ADDRESS [--listen ...] -- COMMAND [ARGS...]

ADDRESS is tcp:HOST:PORT, udp:HOST:PORT (HOST an IPv4 address, [IPv6],
or * for every address; PORT 0 picks a free one) or unix:PATH (@NAME: the
abstract namespace); ",reuseport" after a tcp or udp address sets
SO_REUSEPORT. Each socket is made here, before the command starts, as
systemd (252) makes those of a socket unit: non-blocking, SO_REUSEADDR,
bound (a stale unix socket file is replaced, the file's mode is 0666), and
stream ones listening with the largest backlog (net.core.somaxconn caps it).
The launcher forks; the child places the sockets at descriptors 3, 4, ... in
the order given, inheritable, every other descriptor above 2 closed, sets
LISTEN_FDS, LISTEN_FDNAMES (the names, ':'-separated), LISTEN_PID (its own
pid, just before exec) and, with --notify, NOTIFY_SOCKET=SOCKET, and execs
COMMAND. The launcher keeps its copies of the sockets open, as systemd keeps
them, forwards SIGTERM, SIGINT, SIGHUP and SIGUSR2 to the child, and ends as
the child ends: with its exit status, or killed by the same signal.

Each bound address is printed to stderr as "sd_launch: NAME ADDRESS" (the
port a 0 became) before the command starts. Usage errors: exit status 2;
a socket that cannot be made: 1.
"""

import errno
import os
import signal
import socket
import stat
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)
FIRST_FD = 3
# systemd passes its Backlog= default (UINT_MAX); the kernel caps it to net.core.somaxconn.
BACKLOG = 2**31 - 1


def usage(msg):
    sys.stderr.write("sd_launch: %s\n" % msg)
    sys.stderr.write(
        "usage: sd_launch.py [--notify SOCKET] --listen NAME=ADDRESS [--listen ...]"
        " -- COMMAND [ARGS...]\n")
    sys.exit(2)


def parse_args(argv):
    """The notify socket (or None), [(name, address)] and the command."""
    notify, listens = None, []
    i = 0
    while i < len(argv) and argv[i] != "--":
        opt = argv[i]
        if opt not in ("--notify", "--listen") or i + 1 >= len(argv):
            usage("unknown option or missing value: %s" % opt)
        value = argv[i + 1]
        if opt == "--notify":
            notify = value
        else:
            name, sep, address = value.partition("=")
            # systemd.socket(5): FileDescriptorName= has no ':' nor control characters.
            if not sep or not name or ":" in name or any(ord(c) < 32 for c in name):
                usage("--listen takes NAME=ADDRESS (NAME without ':'): %s" % value)
            listens.append((name, address))
        i += 2
    if i >= len(argv) - 1:
        usage("no -- COMMAND")
    if not listens:
        usage("no --listen")
    return notify, listens, argv[i + 1:]


def inet_address(kind, rest):
    """(family, sockaddr) of HOST:PORT for tcp or udp."""
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("%s address needs HOST:PORT: %s" % (kind, rest))
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    if host in ("", "*"):
        return socket.AF_INET, ("0.0.0.0", int(port))
    socket.inet_aton(host)  # an IPv4 literal; names are not resolved
    return socket.AF_INET, (host, int(port))


def unix_listen(path):
    """A listening AF_UNIX stream socket at @p path, made as systemd makes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if path.startswith("@"):
        sock.bind("\0" + path[1:])
    else:
        old = os.umask(0o111)  # SocketMode=0666
        try:
            try:
                sock.bind(path)
            except OSError as e:
                if e.errno != errno.EADDRINUSE:  # a stale file: replaced, once
                    raise
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
                sock.bind(path)
        finally:
            os.umask(old)
    sock.listen(BACKLOG)
    return sock


def make_socket(address):
    """A bound (and, for streams, listening) non-blocking socket for ADDRESS."""
    kind, sep, rest = address.partition(":")
    rest, _, opts = rest.partition(",")
    if opts not in ("", "reuseport") or (opts and kind == "unix"):
        raise ValueError("unknown option: %s" % address)
    if kind == "unix" and rest:
        sock = unix_listen(rest)
    elif kind in ("tcp", "udp") and sep:
        family, sockaddr = inet_address(kind, rest)
        stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(family, stype)
        if opts == "reuseport":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        if kind == "tcp":
            sock.listen(BACKLOG)
    else:
        raise ValueError("address is tcp:HOST:PORT, udp:HOST:PORT or unix:PATH: %s" % address)
    sock.setblocking(False)
    return sock


def describe(sock):
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:@" + addr[1:].decode() if isinstance(addr, bytes) else "unix:" + addr
    kind = "tcp" if sock.type == socket.SOCK_STREAM else "udp"
    host = "[%s]" % addr[0] if sock.family == socket.AF_INET6 else addr[0]
    return "%s:%s:%d" % (kind, host, addr[1])


def exec_child(socks, names, notify, command):
    """In the child: descriptors and environment as systemd leaves them, then exec."""
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    # Out of the way first, so that no socket is overwritten before it is placed.
    top = max([s.fileno() for s in socks] + [FIRST_FD + len(socks)]) + 1
    moved = [os.dup2(s.fileno(), top + i, inheritable=False) for i, s in enumerate(socks)]
    for i, fd in enumerate(moved):
        os.dup2(fd, FIRST_FD + i, inheritable=True)
    os.closerange(FIRST_FD + len(socks), os.sysconf("SC_OPEN_MAX"))
    env = dict(os.environ)
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID", "NOTIFY_SOCKET"):
        env.pop(key, None)
    env["LISTEN_FDS"] = str(len(socks))
    env["LISTEN_FDNAMES"] = ":".join(names)
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify
    env["LISTEN_PID"] = str(os.getpid())
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        os.execvpe(command[0], command, env)
    except OSError as e:
        os.write(2, ("sd_launch: %s: %s\n" % (command[0], e.strerror)).encode())
    os._exit(127)


def end_as(status):
    """Exit as the child did: its exit status, or its signal raised on ourselves."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        sys.exit(128 + sig)
    sys.exit(os.WEXITSTATUS(status))


def main():
    notify, listens, command = parse_args(sys.argv[1:])
    socks = []
    for name, address in listens:
        try:
            socks.append(make_socket(address))
        except (OSError, ValueError) as e:
            sys.stderr.write("sd_launch: %s=%s: %s\n" % (name, address, e))
            sys.exit(1)
        sys.stderr.write("sd_launch: %s %s\n" % (name, describe(socks[-1])))
    sys.stderr.flush()
    sys.stdout.flush()
    child = 0
    me = os.getpid()

    def forward(sig, frame):
        if os.getpid() == me and child > 0:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    # Blocked across the fork: the child resets them before they can reach it.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        exec_child(socks, [n for n, _ in listens], notify, command)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        pid, status = os.waitpid(child, 0)
        if pid == child and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            break
    end_as(status)


if __name__ == "__main__":
    main()
