"""Thread store throughput: appends from 20 concurrent threads, and loading a long thread.

Usage: ``python tools/bench/threads_bench.py [--items 300] [--dsn postgresql://...]``.
SQLite always (a fresh file in a temp dir); PostgreSQL too when ``--dsn`` names an empty
database. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agentkit import Message, ToolCall
from agentkit.threads import PostgresStore, SQLiteStore

THREADS = 20


def turn(i: int) -> list[Message]:
    """One turn of the standard 2-tool workload: the call, two results."""
    return [
        Message.assistant(
            None,
            tool_calls=[
                ToolCall(f"call_{i}a", "get_weather", '{"city": "Paris"}'),
                ToolCall(f"call_{i}b", "get_time", '{"tz": "Europe/Paris"}'),
            ],
        ),
        Message.tool(f"call_{i}a", '{"temp_c": 21, "sky": "clear"}', name="get_weather"),
        Message.tool(f"call_{i}b", '{"time": "12:00"}', name="get_time"),
    ]


async def appends(store: Any, items: int, batch: int) -> float:
    """Items per second, ``THREADS`` threads appending ``items`` each, ``batch`` a call."""
    threads = [await store.create_thread() for _ in range(THREADS)]
    payload = [m for i in range(batch) for m in turn(i)][:batch]

    async def writer(thread_id: str) -> None:
        for _ in range(items // batch):
            await store.append_items(thread_id, None, payload)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for thread in threads:
            tg.start_soon(writer, thread.id)
    elapsed = time.perf_counter() - start
    return THREADS * (items // batch) * batch / elapsed


async def load(store: Any, size: int = 10_000, repeat: int = 7) -> float:
    """Median milliseconds to load every message of a ``size``-item thread."""
    thread = await store.create_thread()
    messages = [m for i in range(size // 3 + 1) for m in turn(i)][:size]
    for start in range(0, size, 500):
        await store.append_items(thread.id, None, messages[start : start + 500])
    assert len(await store.messages(thread.id)) == size  # also warms the caches
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        await store.messages(thread.id)
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


async def load_tail(store: Any, size: int = 10_000, tail: int = 300, repeat: int = 7) -> float:
    """Median milliseconds to load the last ``tail`` messages of a ``size``-item thread
    (what a history policy such as keep_tokens needs)."""
    thread = (await store.list_threads(limit=1))[0]
    assert thread.item_count == size
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        await store.messages(thread.id, start=-tail)
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


async def bench(name: str, store: Any, items: int) -> None:
    async with store:
        for batch in (1, 3):
            rate = await appends(store, items, batch)
            print(
                f"{name}: append, {THREADS} concurrent threads, {batch} item(s) per "
                f"transaction: {rate:,.0f} items/s"
            )
        print(f"{name}: load a 10,000-item thread, all of it: {await load(store):.1f} ms")
        print(f"{name}: load a 10,000-item thread, last 300: {await load_tail(store):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300, help="items per thread")
    parser.add_argument("--dsn", help="also measure PostgreSQL (an empty database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(bench, "sqlite", SQLiteStore(Path(tmp) / "bench.db"), args.items)
    if args.dsn:
        anyio.run(bench, "postgres", PostgresStore(args.dsn), args.items)


if __name__ == "__main__":
    main()
