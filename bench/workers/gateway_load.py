"""Open-loop load on the gateway: ``GET /jobs/{id}`` and ``GET /jobs`` at a fixed rate.

``python -m bench.workers.gateway_load --url URL --job ID --rate 200 --seconds 20``
(the bearer token in ``PALETTE_BENCH_TOKEN``) sends requests on a fixed
schedule (alternating the two paths), whatever the answers' latency, each on a
kept-alive connection of a pool. It uses aiohttp (the ``bench`` dependency
group), whose client costs a fraction of httpx's CPU per request, so the load
does not starve the machine it measures. A request's latency runs from just
before it is sent to the end of its answer.
It prints the latencies per path, the errors, and how late the schedule ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import aiohttp

MAX_CONNECTIONS = 64
TIMEOUT_SECONDS = 5.0


async def load(url: str, token: str, job: str, rate: float, seconds: float) -> dict[str, Any]:
    """Run the schedule; the raw results."""
    paths = [f"/jobs/{job}", "/jobs"]
    latencies: dict[str, list[float]] = {path: [] for path in paths}
    late: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(
        base_url=url, headers=headers, connector=connector, timeout=timeout
    ) as client:

        async def one(path: str, due: float) -> None:
            sent = time.perf_counter()
            late.append((sent - due) * 1000)
            try:
                async with client.get(path) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
                return
            took = (time.perf_counter() - sent) * 1000
            if status != 200:
                errors.append(f"{path}: HTTP {status}")
                return
            latencies[path].append(took)

        for path in paths:  # open the first connections before the clock starts
            async with client.get(path) as response:
                await response.read()
        count = int(rate * seconds)
        cpu = time.process_time()
        start = time.perf_counter()
        tasks = []
        for k in range(count):
            due = start + k / rate
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            tasks.append(asyncio.create_task(one(paths[k % 2], due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {
        "requests": count,
        "seconds": elapsed,
        "load_cpu_s": cpu,
        "latencies_ms": latencies,
        "late_ms": late,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    token = os.environ["PALETTE_BENCH_TOKEN"]
    result = asyncio.run(load(args.url, token, args.job, args.rate, args.seconds))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
