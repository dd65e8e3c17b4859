"""1,000 runs started at once in one process: do all complete, how fast, at what memory cost.

Usage: ``python concurrent_burst.py --framework agentkit --base-url URL [--runs 1000]``.
``--framework`` names a peer module of this folder (``agentkit``, ``handwritten``, ...).

Memory per in-flight run is (peak RSS during the burst − RSS before it) / runs, where
"before" is measured after a warm-up (imports done, connection pool and caches primed), so
the figure is what each additional concurrent run costs, sockets included.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import resource
import sys
import time

from _common import ANSWER, TOOL_CALLS

PEERS = {
    "handwritten": "handwritten",
    "agentkit": "agentkit_peer",
    "openai-agents": "openai_agents_peer",
    "pydantic-ai": "pydantic_ai_peer",
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _burst(framework: str, base_url: str, runs: int) -> dict[str, object]:
    peer = importlib.import_module(PEERS[framework])
    run = peer.make_runner(base_url, False)
    for _ in range(20):
        await run()
    gc.collect()
    baseline = _rss_mb()
    peak_before = _peak_rss_mb()
    TOOL_CALLS[0] = 0
    started = time.perf_counter()
    outputs = await asyncio.gather(*(run() for _ in range(runs)), return_exceptions=True)
    wall = time.perf_counter() - started
    peak = _peak_rss_mb()
    completed = sum(1 for output in outputs if output == ANSWER)
    failures = [repr(o)[:200] for o in outputs if o != ANSWER][:3]
    return {
        "framework": framework,
        "runs": runs,
        "completed": completed,
        "failures": failures,
        "tool_calls": TOOL_CALLS[0],
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        # When the warm-up had already peaked higher, the burst's own peak is unknown.
        "peak_is_burst": peak > peak_before,
        "kb_per_run": (peak - baseline) * 1024 / runs,
    }


def main() -> None:
    """Run the burst and print its JSON result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=sorted(PEERS), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(_burst(args.framework, args.base_url, args.runs))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
