"""Python twin of bench/bench_supervisor.cpp: a systemd-style Restart=always watcher written by
hand. The child is SIGKILLed; the watcher notices (wait/join) and starts a new one: the time from
the kill to the new child started. For a program (subprocess.Popen of sleep 1000) and for a
function (multiprocessing.Process, fork).
usage: restart_always.py [rounds]; prints "metric value unit" lines."""
import multiprocessing
import os
import signal
import subprocess
import sys
import time


def percentile(samples, p):
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(p * len(samples)))]


def report(name, samples):
    print(f"python_restart_{name}_p50 {percentile(samples, 0.5) * 1000:.4g} ms", flush=True)
    print(f"python_restart_{name}_p99 {percentile(samples, 0.99) * 1000:.4g} ms", flush=True)


def sleep_forever():
    while True:
        signal.pause()


def watch(start, stop_wait, rounds):
    child = start()
    samples = []
    for _ in range(rounds):
        time.sleep(0.002)
        began = time.perf_counter()
        os.kill(child.pid, signal.SIGKILL)
        stop_wait(child)
        child = start()
        samples.append(time.perf_counter() - began)
    os.kill(child.pid, signal.SIGKILL)
    stop_wait(child)
    return samples


def start_function():
    p = multiprocessing.get_context("fork").Process(target=sleep_forever)
    p.start()
    return p


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    report("program", watch(lambda: subprocess.Popen(["sleep", "1000"]), lambda p: p.wait(), rounds))
    report("function", watch(start_function, lambda p: p.join(), rounds))
