"""Python twin of bench_queue (named queues.py: a queue.py would hide the standard library module): multiprocessing Queue and Pipe with the fork start method.

- 64-byte messages (bytes objects), one producer process -> the parent's get();
- 1 MiB messages, the same way (MB = 10^6 bytes, as in bench_queue);
- one 1.5 GiB bytes object, timed from the producer's put() to the parent's get() (3 rounds, as
  bench_queue; Python holds ~3 GiB in each process at the peak and ran at 0.26-0.38 GB/s here);
- Pipe round trip of a small int, parent <-> an echoing child.
Each figure is the median of ROUNDS runs; process start-up is outside the timed part except
for the producer, which starts with the clock running in both programs.
"""
import multiprocessing as mp
import statistics
import time

ROUNDS = 5
SMALL_COUNT = 200_000
LARGE_COUNT = 300
LARGE_SIZE = 1 << 20
ROUND_TRIPS = 20_000
HUGE_ROUNDS = 3
HUGE_SIZE = 3 << 29  # 1.5 GiB


def produce(q, message, count):
    for _ in range(count):
        q.put(message)


def produce_huge(q, times, size):
    message = b"x" * (size - 1) + b"!"
    start = time.monotonic()  # CLOCK_MONOTONIC, the same clock in the parent
    q.put(message)
    times.put(start)


def huge_rate(ctx):
    q, times = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=produce_huge, args=(q, times, HUGE_SIZE))
    p.start()
    message = q.get()
    end = time.monotonic()
    if len(message) != HUGE_SIZE or message[-1:] != b"!":
        raise SystemExit("wrong message")
    del message
    start = times.get()
    p.join()
    return HUGE_SIZE / 1e6 / (end - start)


def echo(conn, other_end):
    other_end.close()  # else the parent's close never reaches us as EOF
    while True:
        try:
            v = conn.recv()
        except EOFError:
            return
        conn.send(v + 1)


def queue_rate(ctx, message, count):
    q = ctx.Queue()
    start = time.perf_counter()
    p = ctx.Process(target=produce, args=(q, message, count))
    p.start()
    for _ in range(count):
        if len(q.get()) != len(message):
            raise SystemExit("wrong message")
    elapsed = time.perf_counter() - start
    p.join()
    return elapsed


def round_trip_us(ctx):
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    a.send(0)
    a.recv()
    start = time.perf_counter()
    for i in range(ROUND_TRIPS):
        a.send(i)
        if a.recv() != i + 1:
            raise SystemExit("wrong reply")
    elapsed = time.perf_counter() - start
    a.close()
    p.join()
    return elapsed / ROUND_TRIPS * 1e6


def main():
    ctx = mp.get_context("fork")
    small, large, huge, trips = [], [], [], []
    for i in range(ROUNDS):
        small.append(SMALL_COUNT / queue_rate(ctx, b"x" * 64, SMALL_COUNT))
        large.append(LARGE_COUNT * LARGE_SIZE / 1e6 / queue_rate(ctx, b"x" * LARGE_SIZE, LARGE_COUNT))
        if i < HUGE_ROUNDS:
            huge.append(huge_rate(ctx))
        trips.append(round_trip_us(ctx))
    print(f"python_queue_64b {statistics.median(small):.4g} msgs/s")
    print(f"python_queue_1mib {statistics.median(large):.4g} MB/s")
    print(f"python_queue_1_5gib {statistics.median(huge):.4g} MB/s")
    print(f"python_pipe_round_trip {statistics.median(trips):.4g} us")


if __name__ == "__main__":
    main()
