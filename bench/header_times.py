#!/usr/bin/env python3
"""Compile time of each public header alone (g++ -fsyntax-only, C++20), against <boost/asio.hpp>.

usage: bench/header_times.py [rounds]     (default 3; the median of the rounds is printed)
A file that includes one header and nothing else is what a user's translation unit pays for it.
Run on a quiet machine: the figures are seconds of one core.
"""
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
compiler = os.environ.get("CXX", "g++")


def seconds(include):
    with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as source:
        source.write(f"#include <{include}>\n")
    samples = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            subprocess.run([compiler, "-std=c++20", "-fsyntax-only", "-I", os.path.join(root, "include"), source.name],
                           check=True)
            samples.append(time.perf_counter() - start)
    finally:
        os.unlink(source.name)
    return statistics.median(samples)


reference = seconds("boost/asio.hpp")
print(f"    {'boost/asio.hpp':<28} {reference:6.2f} s   (reference)")
for path in sorted(glob.glob(os.path.join(root, "include", "herd", "*.hpp"))):
    header = "herd/" + os.path.basename(path)
    t = seconds(header)
    print(f"    {header:<28} {t:6.2f} s   {t / reference:5.0%} of asio.hpp")
