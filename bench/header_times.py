#!/usr/bin/env python3
"""Compile cost of each public header alone (g++ -fsyntax-only, C++20), against <boost/asio.hpp>.

usage: bench/header_times.py [rounds]     (default 5; the fastest round is printed)
A file that includes one header and nothing else is what a user's translation unit pays for it.
The figure is the compiler's CPU time (user + system), which a busy machine disturbs far less
than the wall clock; the fastest of the rounds is the one least disturbed, and the rounds go over
every header in turn, so a change in the machine's state touches all of them alike. Compare the
ratios.
"""
import glob
import os
import resource
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
compiler = os.environ.get("CXX", "g++")


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(source):
    before = cpu_seconds_of_children()
    subprocess.run([compiler, "-std=c++20", "-fsyntax-only", "-I", os.path.join(root, "include"), source], check=True)
    return cpu_seconds_of_children() - before


headers = ["boost/asio.hpp"] + ["herd/" + os.path.basename(p)
                                for p in sorted(glob.glob(os.path.join(root, "include", "herd", "*.hpp")))]
sources = {}
try:
    for header in headers:
        with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as source:
            source.write(f"#include <{header}>\n")
        sources[header] = source.name
    best = {header: min(cpu_seconds(sources[header]) for _ in range(1)) for header in headers}
    for _ in range(rounds - 1):
        for header in headers:
            best[header] = min(best[header], cpu_seconds(sources[header]))
finally:
    for name in sources.values():
        os.unlink(name)

reference = best["boost/asio.hpp"]
print(f"    {'boost/asio.hpp':<30} {reference:6.2f} s   (reference)")
for header in headers[1:]:
    print(f"    {header:<30} {best[header]:6.2f} s   {best[header] / reference:5.0%} of asio.hpp")
