"""Load for static_server.py: N concurrent clients fetch random files, on loopback only.

    python examples/load.py --root /var/tmp/www --make 200 --size 65536   # make the files once
    python examples/load.py --url http://127.0.0.1:8080/ --root /var/tmp/www --seconds 10

Prints requests/s and latency percentiles. Bounded in time, stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from pathlib import Path

import aiohttp


async def run(url: str, names: list[str], seconds: float, clients: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                async with session.get(url + random.choice(names)) as response:
                    await response.read()
                    response.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8080/")
    parser.add_argument("--make", type=int, default=0, help="create this many files and exit")
    parser.add_argument("--size", type=int, default=64 << 10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    if args.make:
        args.root.mkdir(parents=True, exist_ok=True)
        for i in range(args.make):
            (args.root / f"f{i:05d}.bin").write_bytes(os.urandom(args.size))
        return
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("load.py only targets this machine (loopback addresses)")
    names = sorted(p.name for p in args.root.iterdir() if p.is_file())
    latencies = sorted(asyncio.run(run(args.url, names, args.seconds, args.clients)))
    n = len(latencies)
    print(
        f"{n / args.seconds:.0f} req/s, p50 {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p99 {latencies[int(n * 0.99)] * 1e3:.2f} ms ({n} requests)"
    )


if __name__ == "__main__":
    main()
