"""Python twin of bench/bench_pipeline.cpp: ints from a producer, squared by two worker
processes, summed in the parent, written by hand with Process and Queue as the Python
tutorials do (one None sentinel per worker). Median of three; stdout carries only
"metric value unit" lines."""
import multiprocessing as mp
import statistics
import time

ITEMS = 200_000


def worker(inbox, outbox):
    while True:
        x = inbox.get()
        if x is None:
            outbox.put(None)
            return
        outbox.put(x * x)


def producer(inbox, workers):
    for i in range(ITEMS):
        inbox.put(i)
    for _ in range(workers):
        inbox.put(None)


def trial():
    inbox, outbox = mp.Queue(maxsize=1024), mp.Queue(maxsize=1024)
    start = time.perf_counter()
    workers = [mp.Process(target=worker, args=(inbox, outbox)) for _ in range(2)]
    feeder = mp.Process(target=producer, args=(inbox, 2))
    for p in workers + [feeder]:
        p.start()
    total, ended = 0, 0
    while ended < 2:
        x = outbox.get()
        if x is None:
            ended += 1
        else:
            total += x
    for p in workers + [feeder]:
        p.join()
    elapsed = time.perf_counter() - start
    assert total == sum(i * i for i in range(ITEMS))
    return ITEMS / elapsed


if __name__ == "__main__":
    mp.set_start_method("fork")
    rates = [trial() for _ in range(3)]
    print(f"python_pipeline_3stage_items {statistics.median(rates):.4g} items/s", flush=True)
