"""Python twin of bench_spawn: asyncio.create_subprocess_exec('/bin/true') + wait, and
subprocess.run, each median of rounds; optional parent size in MiB (touched first)."""
import asyncio
import statistics
import subprocess
import sys
import time

ROUNDS, PER_ROUND = 5, 100


async def asyncio_spawn(samples):
    for _ in range(PER_ROUND):
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()
        samples.append((time.perf_counter() - start) * 1e6)


def subprocess_run(samples):
    for _ in range(PER_ROUND):
        start = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        samples.append((time.perf_counter() - start) * 1e6)


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    ballast = bytearray(b"\1" * (mib << 20))  # touched
    suffix = f"_{mib}mib" if mib else ""
    a, s = [], []
    for _ in range(ROUNDS):
        asyncio.run(asyncio_spawn(a))
        subprocess_run(s)
    print(f"python_asyncio_spawn_wait{suffix} {statistics.median(a):.4g} us")
    print(f"python_subprocess_run{suffix} {statistics.median(s):.4g} us")
    del ballast


main()
