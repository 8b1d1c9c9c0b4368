"""Python twin of herd::pool's benchmarks: multiprocessing.Pool, concurrent.futures'
ProcessPoolExecutor and Pebble's ProcessPool, all with the fork start method.

- round trip of one trivial task on a warm pool of cpu_count workers (median of single calls);
- Pool.map throughput, default chunking (1M tasks) and chunksize=1 (100k tasks);
- imap_unordered of 40k tasks that each burn ~50 us of CPU (calibrated here), against the same
  calls made serially in the parent;
- a CPU-bound sum split in cpu_count parts: serial time, pool time, speed-up;
- recovery from a SIGKILLed worker (pools of 2): time from the kill until the killed task reports
  failure, and until a task submitted right after the kill returns its result (-1: never did).
Every figure is the median of several samples; stdout carries only "metric value unit" lines.

Pebble may be installed for /usr/bin/python3 only (Debian's python3-pebble) while bench/run.py
runs this with sys.executable: then its figures come from `/usr/bin/python3 pool.py --pebble-only`,
whose lines are relayed. With no Pebble anywhere its figures are left out, with a note on stderr.
"""
import concurrent.futures as cf
import itertools
import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import warnings

# The fork start method is chosen on purpose (comparable across versions); Python >= 3.12 warns
# on every fork from a threaded parent, which pools always are.
warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*fork\(\).*")

CTX = mp.get_context("fork")
CPUS = os.cpu_count() or 1
SYSTEM_PYTHON = "/usr/bin/python3"

ROUND_TRIPS, ROUND_TRIP_WARMUP = 2000, 200
ROUNDS = 3
MAP_DEFAULT_N = 1_000_000
MAP_CHUNK1_N = 100_000
BURN_US = 50
BURN_POOL_N, BURN_SERIAL_N = 40_000, 20_000
CPU_RANGE = 3_000_000
KILL_TRIALS, KILL_WORKERS = 5, 2
POOL_FAILURE_WAIT = 2.0  # multiprocessing.Pool never fails a killed task: give up after this
FAILURE_WAIT = 5.0  # the others should report well within this
KILL_JITTER = 0.1
TIMEOUT = 60.0  # upper bound on any single wait, so a broken pool cannot hang the run

# pid of the worker running sleeper(); created before any pool so every worker inherits it.
_running_pid = None


def triv(x):
    return x + 1


def burn(n):
    x = 0
    for i in range(n):
        x += i
    return x


def cpu_part(bounds):
    lo, hi = bounds
    return sum(i + i**2 + i**3 for i in range(lo, hi))


def sleeper():
    _running_pid.value = os.getpid()
    time.sleep(10)


def emit(name, value, unit):
    print(f"{name} {value:.4g} {unit}", flush=True)


def note(text):
    print(f"pool.py: {text}", file=sys.stderr, flush=True)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def round_trip_us(call):
    for i in range(ROUND_TRIP_WARMUP):
        call(i)
    samples = []
    for i in range(ROUND_TRIPS):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def make_pebble_pool(pebble, workers):
    try:
        return pebble.ProcessPool(max_workers=workers, context=CTX)
    except TypeError:  # Pebble < 4.6 has no context argument; fork is Linux's default anyway
        return pebble.ProcessPool(max_workers=workers)


def stop_pebble(pool):
    pool.stop()
    pool.join(timeout=TIMEOUT)


def stop_executor(ex):
    # shutdown() would wait for a task still sleeping in a worker: kill the workers first.
    for p in list((getattr(ex, "_processes", None) or {}).values()):
        try:
            p.kill()
        except Exception:
            pass
    ex.shutdown(wait=True)


def calibrate_burn():
    # Calls of the size used, refined a few times: one long probe scaled down came out 10-40% off
    # on this shared VM. Medians of short batches shrug off a stray preemption.
    n, batch = 1000, 200
    for _ in range(4):
        per_call = statistics.median(timed(lambda: [burn(n) for _ in range(batch)]) for _ in range(5)) / batch
        n = max(1, round(n * BURN_US * 1e-6 / per_call))
    return n


# --- throughput and round trips (this interpreter) -----------------------------------------------

def bench_pool():
    with CTX.Pool(CPUS) as pool:
        emit("python_pool_apply_roundtrip",
             round_trip_us(lambda i: pool.apply_async(triv, (i,)).get(TIMEOUT)), "us")

        pool.map_async(triv, range(MAP_DEFAULT_N)).get(TIMEOUT)  # warm-up
        t = statistics.median(timed(lambda: pool.map_async(triv, range(MAP_DEFAULT_N)).get(TIMEOUT))
                              for _ in range(ROUNDS))
        emit("python_pool_map_default", MAP_DEFAULT_N / t, "tasks/s")

        t = statistics.median(
            timed(lambda: pool.map_async(triv, range(MAP_CHUNK1_N), chunksize=1).get(TIMEOUT))
            for _ in range(ROUNDS))
        emit("python_pool_map_chunksize1", MAP_CHUNK1_N / t, "tasks/s")

        n = calibrate_burn()

        def burn_pool():
            it = pool.imap_unordered(burn, itertools.repeat(n, BURN_POOL_N), chunksize=1)
            for _ in range(BURN_POOL_N):
                it.next(TIMEOUT)

        t = statistics.median(timed(burn_pool) for _ in range(ROUNDS))
        emit("python_pool_imap_unordered_50us", BURN_POOL_N / t, "tasks/s")

        def burn_serial():
            for _ in range(BURN_SERIAL_N):
                burn(n)

        t = statistics.median(timed(burn_serial) for _ in range(ROUNDS))
        emit("python_burn50_serial", BURN_SERIAL_N / t, "tasks/s")
        emit("python_cpus", CPUS, "count")

        step = -(-CPU_RANGE // CPUS)
        parts = [(lo, min(lo + step, CPU_RANGE)) for lo in range(0, CPU_RANGE, step)]
        expected = cpu_part((0, CPU_RANGE))
        serial, pooled = [], []
        for _ in range(ROUNDS):
            serial.append(timed(lambda: cpu_part((0, CPU_RANGE))))
            start = time.perf_counter()
            total = sum(pool.map_async(cpu_part, parts, chunksize=1).get(TIMEOUT))
            pooled.append(time.perf_counter() - start)
            assert total == expected
        s, p = statistics.median(serial), statistics.median(pooled)
        emit("python_cpu_serial", s, "s")
        emit("python_cpu_pool", p, "s")
        emit("python_cpu_speedup", s / p, "x")


def bench_ppe():
    with cf.ProcessPoolExecutor(CPUS, mp_context=CTX) as ex:
        emit("python_ppe_submit_roundtrip",
             round_trip_us(lambda i: ex.submit(triv, i).result(TIMEOUT)), "us")


def bench_pebble_round_trip(pebble):
    pool = make_pebble_pool(pebble, CPUS)
    try:
        emit("python_pebble_schedule_roundtrip",
             round_trip_us(lambda i: pool.schedule(triv, args=(i,)).result(TIMEOUT)), "us")
    finally:
        stop_pebble(pool)


# --- recovery from a SIGKILLed worker --------------------------------------------------------------

class Stamp:
    """When a task finished and whether it succeeded, taken in the thread that completes it."""

    def __init__(self):
        self.done = threading.Event()
        self.at = None
        self.ok = None

    def set(self, ok):
        self.at, self.ok = time.perf_counter(), ok
        self.done.set()

    def watch_future(self, submit):
        try:
            submit().add_done_callback(lambda f: self.set(not f.cancelled() and f.exception() is None))
        except Exception:  # e.g. BrokenProcessPool raised by submit itself
            self.set(False)
        return self


class PebbleAdapter:
    def __init__(self, pebble):
        self.pool = make_pebble_pool(pebble, KILL_WORKERS)

    def submit(self, fn, *args):
        return Stamp().watch_future(lambda: self.pool.schedule(fn, args=args))

    def close(self):
        stop_pebble(self.pool)


class ExecutorAdapter:
    def __init__(self):
        self.ex = cf.ProcessPoolExecutor(KILL_WORKERS, mp_context=CTX)

    def submit(self, fn, *args):
        return Stamp().watch_future(lambda: self.ex.submit(fn, *args))

    def close(self):
        stop_executor(self.ex)


class PoolAdapter:
    def __init__(self):
        self.pool = CTX.Pool(KILL_WORKERS)

    def submit(self, fn, *args):
        stamp = Stamp()
        try:
            self.pool.apply_async(fn, args, callback=lambda _: stamp.set(True),
                                  error_callback=lambda _: stamp.set(False))
        except Exception:
            stamp.set(False)
        return stamp

    def close(self):
        self.pool.terminate()
        self.pool.join()


def kill_trial(make, failure_wait):
    """One fresh pool: returns (ms until the killed task failed, ms until the next task returned),
    None for either that did not happen within its wait."""
    pool = make()
    try:
        for stamp in [pool.submit(triv, i) for i in range(4 * KILL_WORKERS)]:  # start every worker
            if not (stamp.done.wait(TIMEOUT) and stamp.ok):
                raise RuntimeError("warm-up task failed")
        _running_pid.value = 0
        victim = pool.submit(sleeper)
        deadline = time.monotonic() + 10
        while _running_pid.value == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("sleeper never started")
            time.sleep(0.0005)
        # Pebble checks its workers every 0.1 s from its start: a kill at a fixed delay after a
        # fresh pool starts would always land at the same phase (~97 ms every time), so kill at
        # a random moment instead, as a real crash would.
        time.sleep(random.uniform(0, KILL_JITTER))
        killed = time.perf_counter()
        os.kill(_running_pid.value, signal.SIGKILL)
        after = pool.submit(triv, 0)
        after.done.wait(FAILURE_WAIT)
        victim.done.wait(max(0.0, killed + failure_wait - time.perf_counter()))
        failure = (victim.at - killed) * 1e3 if victim.done.is_set() and not victim.ok else None
        following = (after.at - killed) * 1e3 if after.done.is_set() and after.ok else None
        return failure, following
    finally:
        pool.close()


def bench_kill(prefix, make, failure_wait):
    results = [kill_trial(make, failure_wait) for _ in range(KILL_TRIALS)]
    # Any miss prints -1: a broken ProcessPoolExecutor sometimes still returns the next task, when
    # an idle worker answers before the executor notices the death, but it serves nothing after.
    for kind, column, why in (("failure", 0, f"did not report the killed task within {failure_wait:g} s"),
                              ("next", 1, "did not run the task submitted after the kill")):
        values = [r[column] for r in results if r[column] is not None]
        if len(values) == len(results):
            emit(f"{prefix}_kill_{kind}_ms", statistics.median(values), "ms")
        else:
            note(f"{prefix}: {len(results) - len(values)}/{len(results)} trials {why}; printed -1")
            emit(f"{prefix}_kill_{kind}_ms", -1, "ms")


# --- Pebble, here or in the system Python ----------------------------------------------------------

def bench_pebble(pebble):
    bench_pebble_round_trip(pebble)
    bench_kill("python_pebble", lambda: PebbleAdapter(pebble), FAILURE_WAIT)


def pebble_elsewhere():
    """Relays the Pebble figures measured by the system Python, if it has Pebble."""
    if not os.path.exists(SYSTEM_PYTHON) or os.path.realpath(SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        note("pebble is not importable; no python_pebble_* figures")
        return
    try:
        out = subprocess.run([SYSTEM_PYTHON, os.path.abspath(__file__), "--pebble-only"],
                             stdout=subprocess.PIPE, text=True, timeout=2 * TIMEOUT, check=True).stdout
    except (subprocess.SubprocessError, OSError) as error:
        note(f"pebble run under {SYSTEM_PYTHON} failed ({error}); no python_pebble_* figures")
        return
    sys.stdout.write(out)
    sys.stdout.flush()


def main():
    global _running_pid
    _running_pid = CTX.Value("i", 0, lock=False)
    pebble_only = "--pebble-only" in sys.argv[1:]
    try:
        import pebble
    except ImportError:
        pebble = None
    if pebble_only:
        if pebble is None:
            note(f"pebble is not importable by {sys.executable} either; no python_pebble_* figures")
        else:
            bench_pebble(pebble)
        return

    bench_pool()
    bench_ppe()
    bench_kill("python_ppe", ExecutorAdapter, FAILURE_WAIT)
    bench_kill("python_pool", PoolAdapter, POOL_FAILURE_WAIT)
    if pebble is not None:
        bench_pebble(pebble)
    else:
        pebble_elsewhere()


if __name__ == "__main__":
    main()
