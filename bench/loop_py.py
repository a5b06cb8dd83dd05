#!/usr/bin/python3
"""Micro-benchmarks of the asyncio event loop's scheduling primitives.

Baseline numbers for comparison with the C event loop (coreio).  Run with
/usr/bin/python3 (3.11) as

    bench/loop_py.py --loop asyncio|uvloop [--scale F] [--gc]

--scale multiplies the iteration counts (default 1.0).  The number of
timers kept pending in `timer_schedule_cancel_100k` (100000) is part of what
that metric means, so --scale leaves it alone.

Every measurement runs 5 times, each time on a fresh loop from
asyncio.new_event_loop() / uvloop.new_event_loop() that is closed
afterwards.  The median is printed, one line per metric, tab separated:

    <impl> <metric> <value> <unit>

Metrics (times come from time.perf_counter_ns):
  call_soon_batched            ns per callback: one callback running in the
                               loop calls call_soon(cb) N=200000 times, then
                               call_soon(stop).  Timed from the first
                               call_soon until stop runs, so scheduling and
                               running are both included.
  call_soon_chain              ns per callback: a callback that reschedules
                               itself with call_soon N=200000 times.  That is
                               one callback per loop iteration, so the cost of
                               the per-iteration poll is included.
  timer_schedule_cancel_100k   ns per `h = call_later(d, cb); h.cancel()` pair
                               (d random in 1000..2000 s), M=200000 pairs in
                               one callback, with 100000 other timers pending.
                               The timed region ends when a call_soon'd stop
                               callback runs, so it includes the next loop
                               iteration, where the loop cleans up lazily
                               (asyncio rebuilds its heap; uvloop/libuv closes
                               the handles).
  timer_bytes_per_pending      bytes per pending timer: growth in
                               tracemalloc's traced memory after 100000
                               call_later() calls.  See the note in
                               measure_timer_bytes().
  call_soon_threadsafe_batched ns per callback: a producer thread calls
                               call_soon_threadsafe(cb) N=200000 times, as fast
                               as it can, while the loop runs.  Timed from the
                               producer's start until the loop has run the
                               N-th callback.
  call_soon_threadsafe_single  ns per round trip: a producer thread calls
                               call_soon_threadsafe(cb) once and waits until
                               the loop has run cb, which releases a
                               threading.Lock used as a binary semaphore.
                               Repeated N=20000 times.

Before each repetition gc.collect() runs, and the cyclic garbage collector is
then disabled until the repetition ends.  Otherwise the collections set off by
the benchmark's own 100k-200k live handles add a noisy 30-60% to asyncio's
numbers, and the point here is the cost of the primitives themselves.  Pass
--gc to leave the collector enabled.
"""

import argparse
import asyncio
import gc
import random
import statistics
import sys
import threading
import time
import tracemalloc

REPS = 5
N_CALL_SOON = 200_000
N_TIMER_PAIRS = 200_000
N_TIMERS_PENDING = 100_000      # fixed: part of the metric's definition
N_TIMERS_MEM = 100_000
N_THREADSAFE_BATCH = 200_000
N_THREADSAFE_SINGLE = 20_000

now_ns = time.perf_counter_ns


def _noop():
    pass


class Counter:
    __slots__ = ("n",)

    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1


# ----------------------------------------------------------------------------
# 1. call_soon_batched
def measure_call_soon_batched(new_loop, n):
    loop = new_loop()
    try:
        c = Counter()
        cb = c.inc
        res = {}

        def stop():
            res["t1"] = now_ns()
            loop.stop()

        def start():
            call_soon = loop.call_soon
            res["t0"] = now_ns()
            for _ in range(n):
                call_soon(cb)
            call_soon(stop)

        loop.call_soon(start)
        loop.run_forever()
        assert c.n == n, (c.n, n)
        return (res["t1"] - res["t0"]) / n
    finally:
        loop.close()


# ----------------------------------------------------------------------------
# 2. call_soon_chain
def measure_call_soon_chain(new_loop, n):
    loop = new_loop()
    try:
        res = {}
        state = [0]
        call_soon = loop.call_soon

        def cb():
            state[0] += 1
            if state[0] < n:
                call_soon(cb)
            else:
                res["t1"] = now_ns()
                loop.stop()

        def start():
            res["t0"] = now_ns()
            call_soon(cb)

        loop.call_soon(start)
        loop.run_forever()
        assert state[0] == n
        return (res["t1"] - res["t0"]) / n
    finally:
        loop.close()


# ----------------------------------------------------------------------------
# 3. timer_schedule_cancel_100k
def measure_timer_schedule_cancel(new_loop, m, pending, seed):
    rng = random.Random(seed)
    # Delays are generated in advance so random.uniform is not timed.
    pending_delays = [rng.uniform(1000.0, 2000.0) for _ in range(pending)]
    delays = [rng.uniform(1000.0, 2000.0) for _ in range(m)]
    loop = new_loop()
    try:
        res = {}

        def stop():
            res["t1"] = now_ns()
            loop.stop()

        def setup():
            call_later = loop.call_later
            for d in pending_delays:
                call_later(d, _noop)

        def burst():
            call_later = loop.call_later
            cb = _noop
            res["t0"] = now_ns()
            for d in delays:
                h = call_later(d, cb)
                h.cancel()
            loop.call_soon(stop)

        # The pending timers are created in an earlier iteration (not timed).
        loop.call_soon(setup)
        loop.call_soon(loop.call_soon, burst)
        loop.run_forever()
        return (res["t1"] - res["t0"]) / m
    finally:
        loop.close()


# ----------------------------------------------------------------------------
# 4. timer_bytes_per_pending
def measure_timer_bytes(new_loop, count, seed):
    # Method: tracemalloc, for both implementations.  The value is the growth
    # of tracemalloc's "current traced" size (the sum of the live block sizes
    # asked for through PyMem_RawMalloc, PyMem_Malloc and PyObject_Malloc)
    # while `count` timers are scheduled, divided by `count`.  It includes the
    # handle objects, their `when` floats and the growth of the loop's timer
    # container (asyncio: the heap list; uvloop: the set of timers).  It does
    # not include malloc/pymalloc per-block overhead.
    #
    # uvloop: tracemalloc sees uvloop's C allocations too.  The TimerHandle
    # and UVTimer objects are Cython objects allocated through
    # PyObject_Malloc, and each uv_timer_t is allocated with
    # PyMem_RawMalloc, which tracemalloc also traces.  libuv's timer heap is
    # intrusive (its nodes live inside uv_timer_t), so nothing is allocated
    # outside tracemalloc's view.  This was cross-checked against the growth
    # of RSS (/proc/self/statm) for 1M timers, which agreed within
    # pymalloc/malloc overhead.  So no getrusage fallback is needed and the
    # value is never `nan`.
    rng = random.Random(seed)
    delays = [rng.uniform(1000.0, 2000.0) for _ in range(count)]
    loop = new_loop()
    try:
        call_later = loop.call_later
        # Warm-up: set up anything the loop creates lazily on its first timer.
        call_later(1500.0, _noop).cancel()
        loop.call_soon(loop.stop)
        loop.run_forever()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for d in delays:
                call_later(d, _noop)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return (after - before) / count
    finally:
        loop.close()


# ----------------------------------------------------------------------------
# 5. call_soon_threadsafe_batched
def measure_threadsafe_batched(new_loop, n):
    loop = new_loop()
    try:
        res = {}
        state = [0]
        go = threading.Event()

        def cb():
            state[0] += 1
            if state[0] == n:
                res["t1"] = now_ns()
                loop.stop()

        def producer():
            go.wait()
            cst = loop.call_soon_threadsafe
            res["t0"] = now_ns()
            for _ in range(n):
                cst(cb)

        th = threading.Thread(target=producer)
        th.start()
        # Release the producer only once the loop is running.
        loop.call_soon(go.set)
        loop.run_forever()
        th.join()
        assert state[0] == n
        return (res["t1"] - res["t0"]) / n
    finally:
        loop.close()


# ----------------------------------------------------------------------------
# 6. call_soon_threadsafe_single
def measure_threadsafe_single(new_loop, n):
    loop = new_loop()
    try:
        res = {}
        go = threading.Event()
        sem = threading.Lock()      # binary semaphore: the loop releases it
        sem.acquire()
        release = sem.release

        def producer():
            go.wait()
            cst = loop.call_soon_threadsafe
            acquire = sem.acquire
            t0 = now_ns()
            for _ in range(n):
                cst(release)
                acquire()
            res["dt"] = now_ns() - t0
            cst(loop.stop)

        th = threading.Thread(target=producer)
        th.start()
        loop.call_soon(go.set)
        loop.run_forever()
        th.join()
        return res["dt"] / n
    finally:
        loop.close()


# ----------------------------------------------------------------------------
KEEP_GC = False


def median_of(fn, *args):
    vals = []
    for _ in range(REPS):
        gc.collect()
        if not KEEP_GC:
            gc.disable()
        try:
            vals.append(fn(*args))
        finally:
            gc.enable()
    return statistics.median(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), required=True)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the iteration counts (default 1.0)")
    ap.add_argument("--gc", action="store_true",
                    help="leave the cyclic GC enabled during measurements")
    args = ap.parse_args()
    global KEEP_GC
    KEEP_GC = args.gc

    if args.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop

    def sc(n):
        return max(100, int(n * args.scale))

    impl = args.loop

    def emit(metric, value, unit):
        sys.stdout.write("%s\t%s\t%.1f\t%s\n" % (impl, metric, value, unit))
        sys.stdout.flush()

    emit("call_soon_batched",
         median_of(measure_call_soon_batched, new_loop, sc(N_CALL_SOON)),
         "ns")
    emit("call_soon_chain",
         median_of(measure_call_soon_chain, new_loop, sc(N_CALL_SOON)),
         "ns")
    emit("timer_schedule_cancel_100k",
         median_of(measure_timer_schedule_cancel, new_loop,
                   sc(N_TIMER_PAIRS), N_TIMERS_PENDING, 12345),
         "ns")
    emit("timer_bytes_per_pending",
         median_of(measure_timer_bytes, new_loop, sc(N_TIMERS_MEM), 54321),
         "bytes")
    emit("call_soon_threadsafe_batched",
         median_of(measure_threadsafe_batched, new_loop,
                   sc(N_THREADSAFE_BATCH)),
         "ns")
    emit("call_soon_threadsafe_single",
         median_of(measure_threadsafe_single, new_loop,
                   sc(N_THREADSAFE_SINGLE)),
         "ns")


if __name__ == "__main__":
    main()
