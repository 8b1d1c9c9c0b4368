"""Python twin of bench_read_stdout: asyncio subprocess reading 100 MiB of stdout."""
import asyncio
import statistics
import sys
import time

TOTAL, ROUNDS = 100 << 20, 5


async def read_all(producer):
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(producer, str(TOTAL), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert len(out) == TOTAL and proc.returncode == 0
    return time.perf_counter() - start


def main():
    producer = sys.argv[1]
    samples = [asyncio.run(read_all(producer)) for _ in range(ROUNDS)]
    print(f"python_asyncio_communicate_100mib {TOTAL / statistics.median(samples) / 1e6:.4g} MB/s")


main()
