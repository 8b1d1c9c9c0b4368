#!/usr/bin/env python3
"""The HTTP benchmark (issue 14): three servers doing the same /primes work — herd's service
(examples/http_offload), the same Beast server doing the work inline on its loop (--inline), and
Python's aiohttp with a ProcessPoolExecutor (bench/python/http_server.py) — each loaded by wrk
on /primes (16 connections) while a second wrk asks /health on one connection: requests/s and
p50/p99 of /primes, p99 of /health measured at the same time.
usage: bench/http.py BUILD_DIR; prints "metric value unit" lines."""
import os
import re
import signal
import subprocess
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "release")
SECONDS = 8
BELOW = 30000


def milliseconds(text):
    value, unit = re.match(r"([0-9.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse(out):
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    percentiles = dict((p, milliseconds(v)) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return rps, percentiles


def serve(name, command):
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    port = int(line.strip().rsplit(":", 1)[1])
    time.sleep(0.5)  # workers up
    url = f"http://127.0.0.1:{port}"
    load = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{SECONDS}s", "--timeout", "30s", "--latency",
                             f"{url}/primes?below={BELOW}"], stdout=subprocess.PIPE, text=True)
    health = subprocess.Popen(["wrk", "-t1", "-c1", f"-d{SECONDS}s", "--timeout", "30s", "--latency",
                               f"{url}/health"], stdout=subprocess.PIPE, text=True)
    load_out, health_out = load.communicate()[0], health.communicate()[0]
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    rps, p = parse(load_out)
    health_rps, health_p = parse(health_out)
    print(f"{name}_http_primes_rps {rps:.4g} req/s", flush=True)
    print(f"{name}_http_primes_p50 {p['50']:.4g} ms", flush=True)
    print(f"{name}_http_primes_p99 {p['99']:.4g} ms", flush=True)
    print(f"{name}_http_health_p99 {health_p['99']:.4g} ms", flush=True)
    print(f"{name}_http_health_rps {health_rps:.4g} req/s", flush=True)


server = os.path.join(build, "examples", "http_offload")
serve("herd", [server, "--port", "0"])
serve("inline", [server, "--port", "0", "--inline"])
serve("python", ["/usr/bin/python3", os.path.join(root, "bench", "python", "http_server.py"), "0"])
