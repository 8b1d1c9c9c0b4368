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
f.update(run([os.path.join(bench, "bench_pool")]))
f.update(run([sys.executable, os.path.join(python_dir, "pool.py")]))
f.update(run([os.path.join(bench, "bench_start")]))
f.update(run([sys.executable, os.path.join(python_dir, "start.py")]))
f.update(run([os.path.join(bench, "bench_pipeline")]))
f.update(run([sys.executable, os.path.join(python_dir, "pipeline.py")]))


def word_count(mib):
    """The flagship on a generated corpus of `mib` MiB (made once): its MB/s and the parent's peak RSS."""
    command = [os.path.join(build, "examples", "word_count"), "--generate-mib", str(mib)]
    print("$", " ".join(os.path.relpath(c, root) if c.startswith(root) else c for c in command), flush=True)
    subprocess.run(command, check=True, capture_output=True)  # the corpus made, the page cache warm
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures, folder = {}, None
    for line in out.splitlines():
        if line.startswith("corpus: "):
            folder = line[len("corpus: "):line.rindex(" (")]
        elif line.startswith("throughput: "):
            figures[f"herd_word_count_{mib}mib_mb_per_s"] = (float(line.split()[1]), "MB/s")
        elif line.startswith("parent peak RSS: "):
            figures[f"herd_word_count_{mib}mib_peak_rss"] = (float(line.split()[3]), "MiB")
    for name, (value, unit) in figures.items():
        print(f"    {name:<42} {value:>10.4g} {unit}")
    return figures, folder


f.update(run([sys.executable, os.path.join(root, "bench", "http.py"), build]))
f.update(run([os.path.join(bench, "bench_supervisor")]))
f.update(run([sys.executable, os.path.join(python_dir, "restart_always.py")]))

for mib in (20, 200):
    figures, folder = word_count(mib)
    f.update(figures)
    if mib == 200:
        python = run([sys.executable, os.path.join(python_dir, "word_count.py"), folder])
        f.update({k.replace("python_word_count", "python_word_count_200mib"): v for k, v in python.items()})


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
    ("pool round trip: Python Pool.apply_async / herd async_apply", ratio("python_pool_apply_roundtrip", "herd_pool_apply_roundtrip"), ">= 8"),
    ("pool round trip: ProcessPoolExecutor / herd", ratio("python_ppe_submit_roundtrip", "herd_pool_apply_roundtrip"), "> 1"),
    ("pool map 1M ints, default chunks: herd / Python Pool.map", ratio("herd_pool_map_default", "python_pool_map_default"), ">= 5"),
    ("pool map, chunksize 1: herd / Python Pool.map", ratio("herd_pool_map_chunksize1", "python_pool_map_chunksize1"), ">= 10"),
    ("imap_unordered of 50 us tasks: herd / ideal (cores x serial)", f["herd_pool_imap_unordered_50us"][0] / (f["herd_cpus"][0] * f["herd_burn50_serial"][0]), ">= 0.9"),
    ("imap_unordered of 50 us tasks: Python / ideal", f["python_pool_imap_unordered_50us"][0] / (f["python_cpus"][0] * f["python_burn50_serial"][0]), "(for contrast)"),
    ("CPU-bound split, speed-up over serial: herd", f["herd_cpu_speedup"][0], ">= 1.9"),
    ("CPU-bound split, speed-up over serial: Python", f["python_cpu_speedup"][0], "(1.7-1.8 expected)"),
]
rows.append(("HTTP /primes req/s: herd / Python aiohttp+ProcessPoolExecutor",
             ratio("herd_http_primes_rps", "python_http_primes_rps"), ">= 5"))
rows.append(("HTTP /primes req/s: herd / the same server working inline",
             ratio("herd_http_primes_rps", "inline_http_primes_rps"), "(both compute in C++)"))
rows.append(("restart after SIGKILL, program, p50: Python watcher / herd supervisor",
             ratio("python_restart_program_p50", "herd_restart_program_p50"), "> 1"))
rows.append(("restart after SIGKILL, function, p50: Python watcher / herd supervisor",
             ratio("python_restart_function_p50", "herd_restart_function_p50"), "> 1"))
rows.append(("3-stage pipeline of ints, items/s: herd / Python Process+Queue",
             ratio("herd_pipeline_3stage_items", "python_pipeline_3stage_items"), ">= 10"))
rows.append(("word count of 200 MB, MB/s: herd / Python Pool+Counter",
             ratio("herd_word_count_200mib_mb_per_s", "python_word_count_200mib_mb_per_s"), ">= 5"))
rows.append(("word count parent peak RSS: 200 MB / 20 MB corpus (herd)",
             ratio("herd_word_count_200mib_peak_rss", "herd_word_count_20mib_peak_rss"), "~1 (flat)"))
for method in ("spawn", "forkserver", "fork"):
    for mib in (0, 200, 1024):
        rows.append((f"pool of 2 up, {method}, {mib} MiB parent: Python / herd",
                     ratio(f"python_pool_start_{method}_{mib}mib", f"herd_pool_start_{method}_{mib}mib"),
                     ">= 5" if method != "fork" else "(a fork's copy: the kernel's, for both)"))
for method in ("spawn", "forkserver", "fork"):
    for mib in (0, 1024):
        rows.append((f"function child start+join, {method}, {mib} MiB parent: Python / herd",
                     ratio(f"python_process_start_join_{method}_{mib}mib", f"herd_process_start_join_{method}_{mib}mib"),
                     ">= 5"))
for method in ("spawn", "forkserver"):
    rows.append((f"start call holding the loop, {method}: 1 GiB / empty parent (herd)",
                 ratio(f"herd_process_start_call_{method}_1024mib", f"herd_process_start_call_{method}_0mib"), "~1 (flat)"))
rows.append(("spawned pool start, 1 GiB / empty parent (herd)",
             ratio("herd_pool_start_spawn_1024mib", "herd_pool_start_spawn_0mib"), "~1 (flat)"))
rows.append(("forkserver pool start, 1 GiB / empty parent (herd)",
             ratio("herd_pool_start_forkserver_1024mib", "herd_pool_start_forkserver_0mib"), "~1 (flat)"))
# Recovery from a worker's SIGKILL: absolute figures (ms), side by side.
for name, metric, target in [
    ("killed task fails after: herd", "herd_pool_kill_failure_ms", "<= 5 ms"),
    ("killed task fails after: Pebble", "python_pebble_kill_failure_ms", ""),
    ("killed task fails after: ProcessPoolExecutor", "python_ppe_kill_failure_ms", "(then broken)"),
    ("next task returns after: herd", "herd_pool_kill_next_ms", "<= 20 ms"),
    ("next task returns after: Pebble", "python_pebble_kill_next_ms", ""),
    ("next task returns after: multiprocessing.Pool", "python_pool_kill_next_ms", "(killed task never fails)"),
    ("restart after SIGKILL, program, p50: herd supervisor", "herd_restart_program_p50", ""),
    ("restart after SIGKILL, program, p50: Python Popen watcher", "python_restart_program_p50", ""),
    ("restart after SIGKILL, program, p99: herd supervisor", "herd_restart_program_p99", ""),
    ("restart after SIGKILL, program, p99: Python Popen watcher", "python_restart_program_p99", ""),
    ("restart after SIGKILL, function, p50: herd supervisor", "herd_restart_function_p50", ""),
    ("restart after SIGKILL, function, p50: Python Process watcher", "python_restart_function_p50", ""),
    ("restart after SIGKILL, function, p99: herd supervisor", "herd_restart_function_p99", ""),
    ("restart after SIGKILL, function, p99: Python Process watcher", "python_restart_function_p99", ""),
    ("/health p99 while /primes saturates the cores: herd", "herd_http_health_p99", "<= 5 ms"),
    ("/health p99 while /primes saturates the cores: inline server", "inline_http_health_p99", "(the loop blocks)"),
    ("/health p99 while /primes saturates the cores: Python aiohttp", "python_http_health_p99", ""),
    ("1 ms ticker late, 20 children started, fork, 1 GiB", "herd_burst20_ticker_late_fork_1024mib", "(fork stalls)"),
    ("1 ms ticker late, 20 children started, spawn, 1 GiB", "herd_burst20_ticker_late_spawn_1024mib", "<= 5 ms"),
    ("1 ms ticker late, 20 children started, forkserver, 1 GiB", "herd_burst20_ticker_late_forkserver_1024mib", "<= 5 ms"),
    ("1 ms ticker late, replacing workers, fork, 1 GiB", "herd_pool_replace_ticker_late_fork_1024mib", "(fork stalls)"),
    ("1 ms ticker late, replacing workers, spawn, 1 GiB", "herd_pool_replace_ticker_late_spawn_1024mib", "<= 5 ms"),
    ("1 ms ticker late, replacing workers, forkserver, 1 GiB", "herd_pool_replace_ticker_late_forkserver_1024mib", "<= 5 ms"),
]:
    if metric in f:
        rows.append((name + " (ms)", f[metric][0], target))
print("\nsummary")
for name, value, target in rows:
    print(f"    {name:<50} {value:6.2f}x   (target {target})")
