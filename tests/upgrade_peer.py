#!/usr/bin/python3
"""tests/upgrade_peer.py COREIOD CONFIG PORT ACK: play the old coreiod of a
hand-over (coreiod(8), SIGUSR2) to a real new one, to see what the new one
does with sockets it was lent. It listens on 127.0.0.1:PORT (the listener
"e" of CONFIG, one worker), starts COREIOD -c CONFIG with one end of a
SOCK_SEQPACKET pair as COREIO_UPGRADE_FD, sends the socket ("S" message),
then "E", and reads the answer ("R" and the ids taken). With ACK "yes" it
then lets go ("A"), as a real old process does once it has marked its
copies handed over; with "no" it says nothing, as an old process that gave
up on the new one. Either way it then stops the new process with SIGTERM
and reports whether its own listening socket still completes a connection:
the new one's drain refuses new connections on sockets it owns, and must
leave a socket it was only lent as it found it.

Prints "OK answered=ID accepts=yes|no"; exits non-zero on a protocol error.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

TCP, REUSEPORT = 0, 0  # cio_config_proto_t, cio_balance_t


def fail(msg):
    raise SystemExit("FAIL: " + msg)


def message(fields):
    return b"".join(f.encode() + b"\0" for f in fields)


def completes(port):
    """Does a connection complete within a second (the kernel queues it)?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def main():
    coreiod, config, port, ack = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(64)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, COREIO_UPGRADE_FD=str(theirs.fileno()))
    # Its log to our stderr: our stdout is the verdict alone.
    child = subprocess.Popen([coreiod, "-c", config], env=env, pass_fds=[theirs.fileno()],
                             stdout=sys.stderr)
    theirs.close()
    try:
        exchange(child, mine, lsock, port, ack)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def exchange(child, mine, lsock, port, ack):
    mine.settimeout(20)
    s = message(["S", "7", "e", str(TCP), str(REUSEPORT), "64", "127.0.0.1", str(port), "",
                 "0", "0"])
    mine.sendmsg([s], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", lsock.fileno()))])
    mine.send(b"E\0")
    answer = mine.recv(256)
    if answer != b"R\0007\0":
        fail(f"answer {answer!r}")
    if ack == "yes":
        mine.send(b"A\0")
        time.sleep(0.3)  # the new process reads it on its control loop
    child.send_signal(signal.SIGTERM)
    if child.wait(timeout=20) != 0:
        fail(f"coreiod exited with {child.returncode}")
    print(f"OK answered=7 accepts={'yes' if completes(port) else 'no'}")


main()
