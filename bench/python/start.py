"""Python twin of bench/bench_start.cpp, per start method (spawn, forkserver, fork), with a parent
of 0, 200 MiB and 1 GiB of touched memory: start + join of a Process that does nothing (median of
20) and making a multiprocessing.Pool of two and getting its first answer (median of five).
stdout carries only "metric value unit" lines."""
import multiprocessing as mp
import statistics
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*fork\(\).*")

TRIALS = 5


def triv(x):
    return x + 1


def noop():
    pass


def emit(name, value, unit):
    print(f"{name} {value:.4g} {unit}", flush=True)


def process_start_join(method, mib):
    ctx = mp.get_context(method)
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append((time.perf_counter() - start) * 1000)
    emit(f"python_process_start_join_{method}_{mib}mib", statistics.median(samples), "ms")


def pool_start(method, mib):
    ctx = mp.get_context(method)
    samples = []
    for _ in range(TRIALS):
        start = time.perf_counter()
        with ctx.Pool(2) as pool:
            assert pool.apply(triv, (1,)) == 2
            samples.append((time.perf_counter() - start) * 1000)
    emit(f"python_pool_start_{method}_{mib}mib", statistics.median(samples), "ms")


if __name__ == "__main__":
    mp.set_forkserver_preload([])
    ballast = []
    grown = 0
    for mib in (0, 200, 1024):
        ballast.append(bytearray(b"\x01") * ((mib - grown) << 20))
        grown = mib
        for method in ("spawn", "forkserver", "fork"):
            process_start_join(method, mib)
            pool_start(method, mib)
