#!/usr/bin/env python3
"""Runs herd's benchmarks and their Python twins in one go and prints them side by side.

usage: bench/run.py [build-dir]     (default build/release; scripts/bench builds it first)
Every figure is a median; ratios compare numbers measured minutes apart on the same machine.
"""
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "release")
bench = os.path.join(build, "bench")
python_dir = os.path.join(root, "bench", "python")


def run(command):
    print("$", " ".join(os.path.relpath(c, root) if c.startswith(root) else c for c in command), flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures = {}
    for line in out.splitlines():
        name, value, unit = line.split()
        figures[name] = (float(value), unit)
        print(f"    {name:<42} {value:>10} {unit}")
    return figures


f = {}
f.update(run([os.path.join(bench, "bench_spawn")]))
f.update(run([sys.executable, os.path.join(python_dir, "spawn.py")]))
f.update(run([os.path.join(bench, "bench_spawn"), "200"]))
f.update(run([sys.executable, os.path.join(python_dir, "spawn.py"), "200"]))
f.update(run([os.path.join(bench, "bench_read_stdout")]))
f.update(run([sys.executable, os.path.join(python_dir, "read_stdout.py"), os.path.join(bench, "bench_producer")]))
f.update(run([os.path.join(bench, "bench_process")]))
f.update(run([sys.executable, os.path.join(python_dir, "process.py")]))
f.update(run([os.path.join(bench, "bench_queue")]))
f.update(run([sys.executable, os.path.join(python_dir, "queues.py")]))
f.update(run([os.path.join(bench, "bench_fork_stall")]))
f.update(run([sys.executable, os.path.join(python_dir, "fork_stall.py")]))
f.update(run([os.path.join(bench, "bench_sync")]))
f.update(run([sys.executable, os.path.join(python_dir, "sync.py")]))


def ratio(a, b):
    return f[a][0] / f[b][0]


rows = [
    ("spawn+await /bin/true: herd / raw posix_spawn", ratio("herd_child_async_wait", "raw_posix_spawn_waitpid"), "<= 1.2"),
    ("same, 200 MiB parent: herd / raw posix_spawn", ratio("herd_child_async_wait_200mib", "raw_posix_spawn_waitpid_200mib"), "<= 1.2"),
    ("same, 200 MiB parent: Boost.Process v2 / herd", ratio("boost_process_v2_wait_200mib", "herd_child_async_wait_200mib"), "(v2 forks)"),
    ("200 MiB parent / empty parent (herd)", ratio("herd_child_async_wait_200mib", "herd_child_async_wait"), "~1"),
    ("Python asyncio spawn / herd spawn", ratio("python_asyncio_spawn_wait", "herd_child_async_wait"), "> 1"),
    ("read 100 MiB stdout: herd / Python asyncio", ratio("herd_async_run_capture_100mib", "python_asyncio_communicate_100mib"), ">= 2"),
    ("function child start+join: Python fork / herd", ratio("python_process_fork_start_join", "herd_start_join"), ">= 5"),
    ("function child start+join: herd / raw fork", ratio("herd_start_join", "raw_fork_exit_waitpid"), "<= 1.5"),
    ("64 B queue msgs/s: herd put / Python put", ratio("herd_queue_64b_put", "python_queue_64b"), "(one packet each)"),
    ("64 B queue msgs/s: herd pack_puts / Python put", ratio("herd_queue_64b_pack_puts", "python_queue_64b"), ">= 10"),
    ("64 B queue msgs/s: herd put_many / Python put", ratio("herd_queue_64b_put_many", "python_queue_64b"), ">= 10"),
    ("1 MiB queue MB/s: herd / Python", ratio("herd_queue_1mib", "python_queue_1mib"), ">= 5"),
    ("1.5 GiB queue message MB/s: herd / Python", ratio("herd_queue_1_5gib", "python_queue_1_5gib"), "> 1"),
    ("pipe round trip: Python / herd", ratio("python_pipe_round_trip", "herd_pipe_round_trip"), ">= 2"),
    ("pipe round trip: herd / raw blocking socketpair", ratio("herd_pipe_round_trip", "raw_socketpair_round_trip"), "<= 1.5"),
    ("fork stall of a start, 1 GiB parent: herd / empty parent", ratio("herd_start_call_1024mib", "herd_start_call_0mib"), "(grows: issue 12 cures)"),
    ("fork stall of a start, 1 GiB parent: Python / herd", ratio("python_start_call_1024mib", "herd_start_call_1024mib"), "(both fork)"),
    ("2x100k locked increments: herd lock / Python Value+Lock", ratio("herd_lock_2x100k", "python_value_lock_2x100k"), ">= 3"),
    ("2x100k increments: herd fetch_add / Python Value+Lock", ratio("herd_atomic_2x100k", "python_value_lock_2x100k"), ">= 20"),
    ("uncontended acquire+release: herd / Python", ratio("herd_lock_uncontended", "python_lock_uncontended"), "> 1"),
]
print("\nsummary")
for name, value, target in rows:
    print(f"    {name:<50} {value:6.2f}x   (target {target})")
