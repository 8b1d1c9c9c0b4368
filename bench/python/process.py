"""Python twin of bench_process: Process(target=noop) with the fork start method, start + join."""
import multiprocessing as mp
import statistics
import time

ROUNDS, PER_ROUND = 5, 100


def noop():
    pass


def main():
    ctx = mp.get_context("fork")
    samples = []
    for _ in range(ROUNDS):
        for _ in range(PER_ROUND):
            start = time.perf_counter()
            p = ctx.Process(target=noop)
            p.start()
            p.join()
            samples.append((time.perf_counter() - start) * 1e6)
    print(f"python_process_fork_start_join {statistics.median(samples):.4g} us")


if __name__ == "__main__":
    main()
