#!/usr/bin/python3
"""bench/executor_py.py: what a run_in_executor round trip costs in asyncio or
uvloop, measured as bench/bench_executor.c measures coreio.

Usage: /usr/bin/python3 bench/executor_py.py --loop asyncio|uvloop [--scale F]

The job is trivial (it returns its argument), so the figure is the cost of
the default executor itself: submitting to the ThreadPoolExecutor, waking a
pool thread, and settling the asyncio future through call_soon_threadsafe.

  executor_roundtrip      us per job: `await loop.run_in_executor(None, f, i)`
                          K=20000 times in sequence
  executor_concurrent_64  us per job: the same K jobs as
                          `await asyncio.gather(*(64 run_in_executor calls))`

Each repetition runs on a fresh loop (new_event_loop, closed afterwards, so
its default executor is new too) and starts with an unmeasured gather of 64
jobs so the pool's threads exist. Each metric also gets a `_cpu` line: the
process's user + system CPU time (getrusage RUSAGE_SELF, every thread) per
job. Figures are the median of 5 runs, printed as
"<impl>\t<metric>\t<value>\tus". The cyclic GC is off during a repetition,
as in bench/task_py.py.
"""
import argparse
import asyncio
import gc
import resource
import statistics
import time

REPEAT = 5
INFLIGHT = 64


def scaled(n, scale):
    return max(1, int(n * scale))


def identity(x):
    return x


def cpu_ns():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


async def gather_jobs(loop, first, n):
    res = await asyncio.gather(
        *[loop.run_in_executor(None, identity, first + k) for k in range(n)])
    assert res == list(range(first, first + n))


async def roundtrip(k):
    loop = asyncio.get_running_loop()
    await gather_jobs(loop, 1, INFLIGHT)
    c0, t0 = cpu_ns(), time.perf_counter_ns()
    for i in range(1, k + 1):
        r = await loop.run_in_executor(None, identity, i)
        assert r == i
    return time.perf_counter_ns() - t0, cpu_ns() - c0


async def concurrent(k):
    loop = asyncio.get_running_loop()
    await gather_jobs(loop, 1, INFLIGHT)
    c0, t0 = cpu_ns(), time.perf_counter_ns()
    i = 0
    while i < k:
        n = min(INFLIGHT, k - i)
        await gather_jobs(loop, i + 1, n)
        i += n
    return time.perf_counter_ns() - t0, cpu_ns() - c0


def run(new_loop, coro):
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        # What asyncio.run does: join the default executor's threads.
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    k = scaled(20000, args.scale)
    cases = [
        ("executor_roundtrip", roundtrip),
        ("executor_concurrent_64", concurrent),
    ]
    gc.disable()
    for name, fn in cases:
        wall, cpu = [], []
        for _ in range(REPEAT):
            gc.collect()
            dt, dc = run(new_loop, fn(k))
            wall.append(dt / k / 1000.0)
            cpu.append(dc / k / 1000.0)
        print(f"{args.loop}\t{name}\t{statistics.median(wall):.2f}\tus", flush=True)
        print(f"{args.loop}\t{name}_cpu\t{statistics.median(cpu):.2f}\tus", flush=True)


if __name__ == "__main__":
    main()
