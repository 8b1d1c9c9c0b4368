"""Python twin of bench_fork_stall: Process.start() (fork) blocks the asyncio loop; how long, as the
parent's memory grows, and the worst lateness of a 1 ms ticker while 20 children start and join."""
import asyncio
import multiprocessing as mp
import statistics
import time

STARTS = 20


def noop():
    pass


async def ticker(state):
    while state["running"]:
        due = time.perf_counter() + 0.001
        await asyncio.sleep(0.001)
        state["worst"] = max(state["worst"], (time.perf_counter() - due) * 1e6)


async def start_children(state, ctx):
    loop = asyncio.get_running_loop()
    for _ in range(STARTS):
        start = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        state["calls"].append((time.perf_counter() - start) * 1e6)
        await loop.run_in_executor(None, p.join)
        await asyncio.sleep(0.002)
    state["running"] = False


async def measure(ctx):
    state = {"running": True, "worst": 0.0, "calls": []}
    await asyncio.gather(ticker(state), start_children(state, ctx))
    return state


def main():
    ctx = mp.get_context("fork")
    for mib in (0, 200, 1024):
        memory = bytearray(mib << 20)
        for i in range(0, len(memory), 4096):  # touch every page
            memory[i] = 1
        state = asyncio.run(measure(ctx))
        print(f"python_start_call_{mib}mib {statistics.median(state['calls']):.4g} us")
        print(f"python_start_call_max_{mib}mib {max(state['calls']):.4g} us")
        print(f"python_ticker_worst_late_{mib}mib {state['worst']:.4g} us")
        del memory


if __name__ == "__main__":
    main()
