"""bench/spawn_py.py: how many child processes per second asyncio or uvloop
starts and waits for, measured as bench/spawn_coreio.c measures coreio.

Usage: /usr/bin/python3 bench/spawn_py.py --loop asyncio|uvloop
           [--seconds S] [--touch-mib M] [--concurrency K]

Each spawn is asyncio.create_subprocess_exec("/bin/true") with stdin, stdout
and stderr DEVNULL, then proc.wait(). asyncio watches children with Python
3.11's default child watcher (ThreadedChildWatcher: a thread per child);
uvloop with libuv's SIGCHLD handler. Shapes, each run for S seconds
(default 2) after a 0.3 s warm-up:
  seq      one task spawning and waiting, one child at a time
  concK    K tasks doing the same at once (K children in flight, default 16)
With --touch-mib M the process first makes a bytearray of M MiB and writes
every page of it, so that the children start from a large parent.

One line per shape, tab-separated: the loop's name, the shape, the spawns,
the seconds they took, spawns/s, then per spawn the parent's CPU time (utime
+ stime of every thread, RUSAGE_SELF) and the children's (RUSAGE_CHILDREN:
the reaped /bin/true processes) in microseconds, and the parent's VmRSS in MiB.
"""
import argparse
import asyncio
import resource
import sys
import time

PAGE = resource.getpagesize()


def cpu_us(who):
    ru = resource.getrusage(who)
    return (ru.ru_utime + ru.ru_stime) * 1e6


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


async def spawn_one():
    dn = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec("/bin/true", stdin=dn, stdout=dn, stderr=dn)
    code = await proc.wait()
    if code != 0:
        raise RuntimeError(f"/bin/true exited with {code}")


async def spawner(deadline, count):
    while time.monotonic() < deadline:
        await spawn_one()
        count[0] += 1


async def spawn_all(seconds, concurrency, count):
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(spawner(deadline, count) for _ in range(concurrency)))


def measure(new_loop, name, shape, seconds, concurrency):
    """Run one shape; print its line unless shape is None."""
    count = [0]
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        parent0, kids0 = cpu_us(resource.RUSAGE_SELF), cpu_us(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        loop.run_until_complete(spawn_all(seconds, concurrency, count))
        secs = time.monotonic() - t0
        parent = cpu_us(resource.RUSAGE_SELF) - parent0
        kids = cpu_us(resource.RUSAGE_CHILDREN) - kids0
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    n = count[0]
    if shape is not None and n > 0:
        print(f"{name}\t{shape}\t{n}\t{secs:.3f}\t{n / secs:.1f}\t{parent / n:.1f}\t"
              f"{kids / n:.1f}\t{rss_mib()}", flush=True)


def touch(mib):
    """A bytearray of mib MiB with every page written (bytearray(n) zeroes it; the loop makes sure)."""
    mem = bytearray(mib << 20)
    for off in range(0, len(mem), PAGE):
        mem[off] = 1
    return mem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], required=True)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--touch-mib", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    if args.seconds <= 0 or args.touch_mib < 0 or args.concurrency < 1:
        ap.error("--seconds, --concurrency: positive; --touch-mib: not negative")
    if args.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    mem = touch(args.touch_mib) if args.touch_mib > 0 else None
    measure(new_loop, args.loop, None, 0.3, 1)
    measure(new_loop, args.loop, "seq", args.seconds, 1)
    measure(new_loop, args.loop, f"conc{args.concurrency}", args.seconds, args.concurrency)
    del mem
    return 0


if __name__ == "__main__":
    sys.exit(main())
