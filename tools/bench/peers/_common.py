"""What every peer script shares: the workload's constants, its tools, and the timing harness.

Only the standard library is imported here, so that a peer's own import (timed in a
separate fresh process by ``run.py``) is not helped or hurt by this module.

A peer script defines ``make_runner(base_url, stream) -> async () -> str`` (one run: user
message → the model calls both tools in parallel → results → final answer, which it
returns) and calls :func:`main` with it. :func:`main` warms up, times ``--runs`` runs at
``--concurrency`` and prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "bench-model"
API_KEY = "sk-bench-not-a-secret"
INSTRUCTIONS = "You are a helpful assistant. Use the tools to answer."
PROMPT = "What is the weather and the time in Paris?"
ANSWER = "It is sunny in Paris and the time is 12:00."

WEATHER_DOC = "Get the current weather for a city."
TIME_DOC = "Get the current time in a timezone."

#: How many tool calls the workload's tools answered in this process; checked at the end
#: so a framework that skipped a tool (or ran it twice) cannot post a figure.
TOOL_CALLS = [0]


async def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    TOOL_CALLS[0] += 1
    return f"Sunny, 21 C in {city}"


async def get_time(timezone: str) -> str:
    """Get the current time in a timezone.

    Args:
        timezone: IANA timezone name, e.g. "Europe/Paris".
    """
    TOOL_CALLS[0] += 1
    return f"12:00 in {timezone}"


Runner = Callable[[], Awaitable[str]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(run: Runner, runs: int, concurrency: int) -> tuple[float, list[float]]:
    """Wall seconds for ``runs`` runs with ``concurrency`` in flight, and each run's latency."""
    latencies: list[float] = []
    remaining = iter(range(runs))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            output = await run()
            latencies.append(time.perf_counter() - started)
            if output != ANSWER:
                raise AssertionError(f"unexpected final answer {output!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def _bench(
    make_runner: Callable[[str, bool], Runner], args: argparse.Namespace
) -> dict[str, Any]:
    run = make_runner(args.base_url, args.stream)
    # Warm-up at the measured concurrency: opens the connection pool, fills caches.
    warmup = max(args.warmup, args.concurrency)
    await _timed(run, warmup, args.concurrency)
    TOOL_CALLS[0] = 0
    gc.collect()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu_before = _cpu_seconds()
    wall, latencies = await _timed(run, args.runs, args.concurrency)
    cpu = _cpu_seconds() - cpu_before
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    if TOOL_CALLS[0] != 2 * args.runs:
        raise AssertionError(f"{TOOL_CALLS[0]} tool calls for {args.runs} runs (expected 2 each)")
    return {
        "runs": args.runs,
        "warmup_runs": warmup,
        "concurrency": args.concurrency,
        "stream": args.stream,
        "ms_per_run": wall / args.runs * 1000,
        "latency_ms_median": statistics.median(latencies) * 1000,
        "client_cpu_ms_per_run": cpu / args.runs * 1000,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(make_runner: Callable[[str, bool], Runner], versions: dict[str, str]) -> None:
    """Parse the command line, run the benchmark and print its JSON result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile the timed runs into FILE (figures then include the profiler's overhead)",
    )
    args = parser.parse_args()
    result = asyncio.run(_bench(make_runner, args))
    result["versions"] = versions
    result["python"] = sys.version.split()[0]
    result["pid"] = os.getpid()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
