"""Python twin of examples/http_offload.cpp for the HTTP benchmark: aiohttp serving /health on
the loop and /primes?below=N counted in a ProcessPoolExecutor (loop.run_in_executor), the same
trial division. usage: http_server.py PORT (prints "listening on 127.0.0.1:PORT")."""
import asyncio
import concurrent.futures
import os
import signal
import sys

from aiohttp import web


def count_primes(n):
    count = 0
    for k in range(2, n):
        d = 2
        prime = True
        while d * d <= k:
            if k % d == 0:
                prime = False
                break
            d += 1
        count += prime
    return count


async def health(request):
    return web.Response(text="ok\n")


async def primes(request):
    n = int(request.query["below"])
    loop = asyncio.get_running_loop()
    count = await loop.run_in_executor(request.app["pool"], count_primes, n)
    return web.Response(text=f"{count}\n")


async def main(port):
    app = web.Application()
    app["pool"] = concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count())
    app.router.add_get("/health", health)
    app.router.add_get("/primes", primes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # port 0: the one the system chose
    print(f"listening on 127.0.0.1:{port}", flush=True)
    # SIGTERM ends the server and its pool's workers (by default Python would die at once and
    # leave the workers running, holding the benchmark's pipe).
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    app["pool"].shutdown(cancel_futures=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
