#!/usr/bin/env python3
"""Compile cost of each public header alone (g++ -fsyntax-only, C++20), against <boost/asio.hpp>.

usage: bench/header_times.py [rounds]     (default 5; the fastest round is printed)
A file that includes one header and nothing else is what a user's translation unit pays for it.
The figure is the compiler's CPU time (user + system), which a busy machine disturbs far less
than the wall clock; the fastest of the rounds is the one least disturbed. Compare the ratios.
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


def seconds(include):
    with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as source:
        source.write(f"#include <{include}>\n")
    samples = []
    try:
        for _ in range(rounds):
            before = cpu_seconds_of_children()
            subprocess.run([compiler, "-std=c++20", "-fsyntax-only", "-I", os.path.join(root, "include"), source.name],
                           check=True)
            samples.append(cpu_seconds_of_children() - before)
    finally:
        os.unlink(source.name)
    return min(samples)


reference = seconds("boost/asio.hpp")
print(f"    {'boost/asio.hpp':<30} {reference:6.2f} s   (reference)")
for path in sorted(glob.glob(os.path.join(root, "include", "herd", "*.hpp"))):
    header = "herd/" + os.path.basename(path)
    t = seconds(header)
    print(f"    {header:<30} {t:6.2f} s   {t / reference:5.0%} of asio.hpp")
