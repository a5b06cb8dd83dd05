"""bench/task_py.py: what coroutines and tasks cost in asyncio or uvloop,
measured as bench/bench_task.c measures coreio's tasks.

Usage: /usr/bin/python3 bench/task_py.py --loop asyncio|uvloop [--scale F]
Prints "<impl>\t<metric>\t<value>\tns" lines, each the median of 5 runs:
  await_done_future   ns per `await fut` on an already-done future
  sleep0_yield        ns per `await asyncio.sleep(0)` (one loop iteration)
  pingpong_roundtrip  ns per round trip between two tasks through futures
  task_create_finish  ns per task created, run and finished (32 live at once)
"""
import argparse
import asyncio
import gc
import statistics
import time

REPEAT = 5


def scaled(n, scale):
    return max(1, int(n * scale))


async def await_done(n):
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await fut
    return (time.perf_counter_ns() - t0) / n


async def sleep0(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await asyncio.sleep(0)
    return (time.perf_counter_ns() - t0) / n


async def pingpong(n):
    loop = asyncio.get_running_loop()
    box = {"to_b": loop.create_future(), "to_a": loop.create_future()}

    async def pong():
        for _ in range(n):
            await box["to_b"]
            box["to_b"] = loop.create_future()
            box["to_a"].set_result(None)

    async def ping():
        for _ in range(n):
            box["to_b"].set_result(None)
            await box["to_a"]
            box["to_a"] = loop.create_future()

    t0 = time.perf_counter_ns()
    b = loop.create_task(pong())
    await loop.create_task(ping())
    await b
    return (time.perf_counter_ns() - t0) / n


async def empty():
    return None


async def create_finish(n):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    batch = []
    for i in range(n):
        batch.append(loop.create_task(empty()))
        if i % 32 == 31:
            await asyncio.sleep(0)
            batch.clear()
    await asyncio.sleep(0)
    return (time.perf_counter_ns() - t0) / n


def run(new_loop, coro):
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
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
    s = args.scale
    cases = [
        ("await_done_future", lambda: await_done(scaled(2000000, s))),
        ("sleep0_yield", lambda: sleep0(scaled(200000, s))),
        ("pingpong_roundtrip", lambda: pingpong(scaled(100000, s))),
        ("task_create_finish", lambda: create_finish(scaled(100000, s))),
    ]
    gc.disable()
    for name, make in cases:
        values = []
        for _ in range(REPEAT):
            gc.collect()
            values.append(run(new_loop, make()))
        print(f"{args.loop}\t{name}\t{statistics.median(values):.1f}\tns", flush=True)


if __name__ == "__main__":
    main()
