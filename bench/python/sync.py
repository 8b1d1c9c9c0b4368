"""Python twin of bench_sync: 2 processes x 100,000 increments of a shared counter under a lock
(Value('l', lock=False) + Lock(), and the idiomatic synchronized Value with get_lock()), and
uncontended acquire + release in one process. Operations per second, median of ROUNDS runs;
timed from the moment both processes are told to go until both are joined, as in bench_sync.
"""
import multiprocessing as mp
import statistics
import time

ROUNDS = 5
WORKERS = 2
INCREMENTS = 100_000
UNCONTENDED = 300_000


def add_with_lock(ready, go, value, lock):
    ready.release()
    go.wait()
    for _ in range(INCREMENTS):
        with lock:
            value.value += 1


def add_with_get_lock(ready, go, value):
    ready.release()
    go.wait()
    for _ in range(INCREMENTS):
        with value.get_lock():
            value.value += 1


def rate(ctx, target, args, value):
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=target, args=(ready, go) + args) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    if value.value != WORKERS * INCREMENTS:
        raise SystemExit("lost increments")
    return WORKERS * INCREMENTS / elapsed


def main():
    ctx = mp.get_context("fork")
    plain, synchronized, single = [], [], []
    for _ in range(ROUNDS):
        value, lock = ctx.Value("l", 0, lock=False), ctx.Lock()
        plain.append(rate(ctx, add_with_lock, (value, lock), value))
        value = ctx.Value("l", 0)
        synchronized.append(rate(ctx, add_with_get_lock, (value,), value))
        start = time.perf_counter()
        for _ in range(UNCONTENDED):
            lock.acquire()
            lock.release()
        single.append(UNCONTENDED / (time.perf_counter() - start))
    print(f"python_value_lock_2x100k {statistics.median(plain):.4g} ops/s")
    print(f"python_value_get_lock_2x100k {statistics.median(synchronized):.4g} ops/s")
    print(f"python_lock_uncontended {statistics.median(single):.4g} ops/s")


if __name__ == "__main__":
    main()
