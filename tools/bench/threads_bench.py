"""Threads benchmark: what storing a run costs, appends, and loading a long thread.

Measured side by side in one process, so the ratios hold even on a busy machine:

(a) one run of the standard workload (user message → the model calls ``get_weather`` and
    ``get_time`` in parallel → results → final answer; the fake OpenAI server runs in its
    own process) on a fresh thread, against the same run without a store: SQLite (target
    ≤ 1.15×) and PostgreSQL (target ≤ 1.3×). Modes alternate run by run;
(b) appends from 20 concurrent threads on SQLite (target ≥ 3,000 items/s);
(c) loading a 10,000-item thread and applying ``keep_tokens(4000)`` (target ≤ 50 ms).

PostgreSQL runs on a throwaway server (``tests/_postgres.py``) unless ``--dsn`` names an
empty database; ``--no-postgres`` skips it.

Usage: ``python tools/bench/threads_bench.py [--runs 300] [--items 300] [--chart FILE.svg]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
sys.path[:0] = [str(ROOT), str(BENCH), str(BENCH / "peers"), str(ROOT / "tests")]

from _common import API_KEY, INSTRUCTIONS, MODEL, PROMPT, get_time, get_weather  # noqa: E402
from run import fake_server  # noqa: E402

from agentkit import Agent, Message, ToolCall, tool  # noqa: E402
from agentkit.history import keep_tokens  # noqa: E402
from agentkit.models import OpenAIChatModel  # noqa: E402
from agentkit.run import RunSpec  # noqa: E402
from agentkit.testing import FunctionModel  # noqa: E402
from agentkit.threads import PostgresStore, SQLiteStore  # noqa: E402
from agentkit.threads.runner import load_history  # noqa: E402

THREADS = 20
TARGETS = {"sqlite": 1.15, "postgres": 1.3}


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


# --- (a) a run on a thread against the same run without a store -------------------------


async def runs(base_url: str, stores: dict[str, Any], count: int) -> dict[str, list[float]]:
    """Milliseconds of each of ``count`` runs per mode, the modes taking turns run by run
    (so drift in the machine's load hits them alike); each thread run gets a new thread,
    created outside the timing."""
    agent = Agent(
        model=OpenAIChatModel(MODEL, base_url=base_url, api_key=API_KEY),
        instructions=INSTRUCTIONS,
        tools=[tool(get_weather), tool(get_time)],
    )

    async def once(store: Any) -> float:
        thread = None if store is None else (await store.create_thread()).id
        begin = time.perf_counter()
        result = await agent.run(PROMPT, thread=thread, store=store)
        elapsed = (time.perf_counter() - begin) * 1000
        assert result.status == "completed" and len(result.new_messages) == 5
        return elapsed

    modes: dict[str, Any] = {"no store": None, **stores}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(count + 20):  # the first 20 warm up connections and caches
        for mode, store in modes.items():
            elapsed = await once(store)
            if i >= 20:
                times[mode].append(elapsed)
    return times


# --- (b) appends -------------------------------------------------------------------------


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


# --- (c) loading a long thread -------------------------------------------------------------


async def long_thread(store: Any, size: int = 10_000) -> str:
    thread = await store.create_thread()
    messages = [Message.user("Weather in Paris, and the time?")]
    messages += [m for i in range(size // 3 + 1) for m in turn(i)]
    for start in range(0, size, 500):
        await store.append_items(thread.id, None, messages[start : min(start + 500, size)])
    return thread.id


async def load(store: Any, thread_id: str, whole: bool, repeat: int = 9) -> float:
    """Median milliseconds to load the thread as a run with ``keep_tokens(4000)`` does
    (only the tail the policy can send), or the whole thread, and apply the policy."""
    policy = keep_tokens(4000)
    spec = RunSpec(model=FunctionModel(lambda request: "ok"), history_policy=policy)
    await store.messages(thread_id)  # warms the caches
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        if whole:
            history = await store.messages(thread_id)
        else:
            history = await load_history(store, thread_id, spec)
        sent = policy(history)
        times.append((time.perf_counter() - begin) * 1000)
        assert 100 < len(sent) < 1000
    return statistics.median(times)


# --- the whole benchmark -----------------------------------------------------------------


@contextlib.contextmanager
def postgres_dsn(dsn: str | None, enabled: bool) -> Iterator[str | None]:
    """The given dsn, a throwaway server's, or None."""
    if dsn is not None or not enabled:
        yield dsn
        return
    from _postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server.new_database()
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def opened(stores: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    try:
        yield stores
    finally:
        for store in stores.values():
            await store.close()


async def bench(base_url: str, stores: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    async with opened(stores):
        times = await runs(base_url, stores, args.runs)
        base = statistics.median(times["no store"])
        rows.append(Row("(a) run, no store", f"{base:.2f} ms", "", "", None))
        for name in stores:
            ms = statistics.median(times[name])
            ratio = ms / base
            rows.append(Row(f"(a) run on a thread, {name}", f"{ms:.2f} ms", f"{ratio:.2f}×",
                            f"≤ {TARGETS[name]}×", ratio <= TARGETS[name]))  # fmt: skip
        for name, store in stores.items():
            for batch in (1, 3):
                rate = await appends(store, args.items, batch)
                target = name == "sqlite" and batch == 1
                rows.append(Row(
                    f"(b) appends, {THREADS} threads, {batch} item(s)/transaction, {name}",
                    f"{rate:,.0f} items/s", "", "≥ 3,000/s" if target else "",
                    rate >= 3000 if target else None,
                ))  # fmt: skip
        for name, store in stores.items():
            thread_id = await long_thread(store)
            ms = await load(store, thread_id, whole=False)
            rows.append(Row(f"(c) 10,000-item thread, loaded for keep_tokens(4000), {name}",
                            f"{ms:.1f} ms", "", "≤ 50 ms", ms <= 50))  # fmt: skip
            ms = await load(store, thread_id, whole=True)
            rows.append(Row(f"(c) the same, loading the whole thread, {name}",
                            f"{ms:.1f} ms", "", "", None))  # fmt: skip
    return rows


class Row:
    """One line of the table."""

    def __init__(self, what: str, value: str, ratio: str, target: str, met: bool | None):
        self.cells = [what, value, ratio, target, "" if met is None else "yes" if met else "NO"]


def table(rows: list[Row]) -> str:
    header = ["figure", "measured", "ratio", "target", "met"]
    lines = [header, *(row.cells for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def chart(rows: list[Row], out: Path) -> None:
    """A bar chart of (a) as SVG: matplotlib is not in the project's venv, and an SVG
    needs nothing."""
    bars = [(r.cells[0].removeprefix("(a) "), float(r.cells[1].split()[0]), r.cells[2])
            for r in rows if r.cells[0].startswith("(a)")]  # fmt: skip
    top = max(ms for _, ms, _ in bars)
    parts = ['<text x="10" y="20" font-size="14">One run of the standard workload, '
             "median ms (fake OpenAI server)</text>"]  # fmt: skip
    for i, (label, ms, ratio) in enumerate(bars):
        y = 40 + i * 34
        width = 360 * ms / top
        parts.append(
            f'<text x="10" y="{y + 17}" font-size="12">{label}</text>'
            f'<rect x="200" y="{y}" width="{width:.1f}" height="24" fill="#1f77b4"/>'
            f'<text x="{205 + width:.1f}" y="{y + 17}" font-size="12">{ms:.2f} ms {ratio}</text>'
        )
    height = 50 + len(bars) * 34
    out.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="680" height="{height}" '
        f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        f"{''.join(parts)}</svg>\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs per mode for (a)")
    parser.add_argument("--items", type=int, default=300, help="items per thread for (b)")
    parser.add_argument("--dsn", help="an empty PostgreSQL database instead of a throwaway one")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--chart", type=Path, metavar="FILE.svg", help="write a bar chart of (a)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_dsn(args.dsn, not args.no_postgres) as dsn,
        fake_server() as server,
    ):
        stores: dict[str, Any] = {"sqlite": SQLiteStore(Path(tmp) / "bench.db")}
        if dsn is not None:
            stores["postgres"] = PostgresStore(dsn)
        rows = anyio.run(bench, server.base_url, stores, args)
    print(table(rows))
    if args.chart:
        chart(rows, args.chart)
        print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
