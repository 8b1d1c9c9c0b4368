"""Python twin of examples/word_count.cpp: Pool.imap_unordered over the files of a folder in the
same groups (four per worker), each worker counting a group's words (runs of ASCII letters,
lower-cased) into a Counter, the parent merging them. usage: word_count.py FOLDER; prints
"metric value unit" lines."""
import collections
import multiprocessing as mp
import os
import re
import resource
import sys
import time

WORD = re.compile(rb"[A-Za-z]+")


def count_files(paths):
    counts = collections.Counter()
    for path in paths:
        with open(path, "rb") as f:
            counts.update(w.lower() for w in WORD.findall(f.read()))
    return counts


if __name__ == "__main__":
    folder = sys.argv[1]
    files = sorted(os.path.join(d, n) for d, _, names in os.walk(folder) for n in names)
    size = sum(os.path.getsize(f) for f in files)
    start = time.perf_counter()
    total = collections.Counter()
    groups = min(len(files), 4 * os.cpu_count())
    with mp.Pool() as pool:
        for counts in pool.imap_unordered(count_files, [files[g::groups] for g in range(groups)]):
            total.update(counts)
    elapsed = time.perf_counter() - start
    print(f"python_word_count_mb_per_s {size / 1e6 / elapsed:.4g} MB/s", flush=True)
    print(f"python_word_count_peak_rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.4g} MiB", flush=True)
