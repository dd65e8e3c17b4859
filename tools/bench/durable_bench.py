"""Durable runs benchmark: what durability costs, and how throughput grows with workers.

Measured side by side in one run, so the ratios hold even on a busy machine:

(a) overhead: rounds of ``--runs`` runs of the standard workload (the model calls
    ``get_weather`` and ``get_time`` at once, then answers; the fake OpenAI server runs
    in its own process), ``--concurrency`` at a time, each on a fresh thread of a
    PostgreSQL store: plain ``agent.run(thread=..., store=...)`` against the same runs
    submitted to a :class:`~agentkit.durable.DurableRunner` with a worker in this process.
    The modes take turns round by round; the figure is the median time per run over the
    rounds (target: durable ≤ 1.5 × plain);
(b) throughput: ``--jobs`` runs on a fake model that takes 50 ms per request, drained by
    1 worker process, then by 4 (each worker runs ``--worker-concurrency`` at a time);
    runs per second, 4 workers against 1 (target ≥ 3×).

PostgreSQL runs on a throwaway server (``tests/_postgres.py``).

Usage: ``python tools/bench/durable_bench.py [--runs 40] [--rounds 5] [--jobs 80]
[--chart FILE.svg]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
sys.path[:0] = [str(ROOT), str(BENCH), str(BENCH / "peers"), str(ROOT / "tests")]

from _common import API_KEY, INSTRUCTIONS, MODEL, PROMPT, get_time, get_weather  # noqa: E402
from _postgres import PostgresServer  # noqa: E402
from run import fake_server  # noqa: E402

from agentkit import Agent, tool  # noqa: E402
from agentkit.durable import DurableRunner  # noqa: E402
from agentkit.models import OpenAIChatModel  # noqa: E402
from agentkit.threads import PostgresStore  # noqa: E402

OVERHEAD_TARGET = 1.5
SCALE_TARGET = 3.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- (a) overhead ---------------------------------------------------------------------------


async def overhead(base_url: str, dsn: str, args: argparse.Namespace) -> dict[str, float]:
    """Median ms per run, plain and durable, over ``args.rounds`` alternating rounds."""
    agent = Agent(
        name="bench",
        model=OpenAIChatModel(MODEL, base_url=base_url, api_key=API_KEY),
        instructions=INSTRUCTIONS,
        tools=[tool(get_weather), tool(get_time)],
    )
    plain_store = PostgresStore(dsn, max_size=args.concurrency + 2)
    runner = DurableRunner(
        PostgresStore(dsn, max_size=args.concurrency + 2), agents={"bench": agent},
        worker_concurrency=args.concurrency,
    )  # fmt: skip
    await runner.start()
    limit = asyncio.Semaphore(args.concurrency)

    async def plain(thread: str) -> None:
        async with limit:
            result = await agent.run(PROMPT, thread=thread, store=plain_store)
        assert result.status == "completed" and len(result.new_messages) == 5

    async def durable(thread: str) -> None:
        handle = await runner.submit("bench", PROMPT, thread=thread)
        result = await handle.result(timeout=120)
        assert result.status == "completed" and len(result.messages) == 5, result.status

    times: dict[str, list[float]] = {"plain": [], "durable": []}
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up both
            for mode, one in (("plain", plain), ("durable", durable)):
                threads = [(await plain_store.create_thread()).id for _ in range(args.runs)]
                begin = time.perf_counter()
                await asyncio.gather(*(one(t) for t in threads))
                per_run = (time.perf_counter() - begin) * 1000 / args.runs
                if round_:
                    times[mode].append(per_run)
                log(f"(a) round {round_}{' (warm-up)' if not round_ else ''}: {mode} "
                    f"{per_run:.2f} ms/run")  # fmt: skip
    finally:
        await runner.close()
        await plain_store.close()
    return {mode: statistics.median(values) for mode, values in times.items()}


# --- (b) throughput by workers ---------------------------------------------------------------


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "agentkit", "worker", "durable_app:runner"]
    workers = [
        subprocess.Popen(
            command, cwd=BENCH, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if "agentkit worker" not in line:
            raise RuntimeError(f"a worker did not start: {line!r}")
    return workers


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)


async def throughput(dsn: str, workers: int, args: argparse.Namespace) -> float:
    """Runs per second that ``workers`` worker processes drain ``args.jobs`` runs at."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
        "BENCH_DSN": dsn,
        "BENCH_CONCURRENCY": str(args.worker_concurrency),
    }
    os.environ["BENCH_DSN"] = dsn
    import durable_app

    runner = durable_app.runner
    processes = start_workers(workers, env)
    try:
        begin = time.perf_counter()
        handles = await asyncio.gather(
            *(runner.submit("bench", PROMPT) for _ in range(args.jobs))
        )
        for handle in handles:
            result = await handle.result(timeout=300)
            assert result.status == "completed"
        rate = args.jobs / (time.perf_counter() - begin)
    finally:
        stop_workers(processes)
        await runner.store.close()
    log(f"(b) {workers} worker(s): {rate:.1f} runs/s")
    return rate


# --- report -----------------------------------------------------------------------------------


def chart(rows: list[tuple[str, float, str]], out: Path) -> None:
    """Bars of the four figures, as SVG (nothing to install)."""
    parts = ['<text x="10" y="20" font-size="14">Durable runs on PostgreSQL '
             "(one benchmark run, side by side)</text>"]  # fmt: skip
    top = {"ms/run": max(v for _, v, u in rows if u == "ms/run"),
           "runs/s": max(v for _, v, u in rows if u == "runs/s")}  # fmt: skip
    for i, (label, value, unit) in enumerate(rows):
        y = 40 + i * 34
        width = 330 * value / top[unit]
        colour = "#1f77b4" if unit == "ms/run" else "#2ca02c"
        parts.append(
            f'<text x="10" y="{y + 17}" font-size="12">{label}</text>'
            f'<rect x="230" y="{y}" width="{width:.1f}" height="24" fill="{colour}"/>'
            f'<text x="{235 + width:.1f}" y="{y + 17}" font-size="12">{value:.1f} {unit}</text>'
        )
    height = 50 + len(rows) * 34
    out.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="680" height="{height}" '
        f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        f"{''.join(parts)}</svg>\n"
    )


async def bench(args: argparse.Namespace) -> int:
    server = PostgresServer()
    server.start()
    try:
        cost = {"plain": float("nan"), "durable": float("nan")}
        one = four = float("nan")
        if args.only in (None, "a"):
            with fake_server() as fake:
                cost = await overhead(fake.base_url, server.new_database(), args)
        if args.only in (None, "b"):
            dsn = server.new_database()
            one = await throughput(dsn, 1, args)
            four = await throughput(dsn, 4, args)
    finally:
        server.stop()
    ratio, scale = cost["durable"] / cost["plain"], four / one
    print(f"(a) plain run on PostgreSQL   {cost['plain']:8.2f} ms/run")
    print(f"(a) durable run               {cost['durable']:8.2f} ms/run  {ratio:.2f}×  "
          f"target ≤ {OVERHEAD_TARGET}×  {'met' if ratio <= OVERHEAD_TARGET else 'NOT met'}")
    print(f"(b) 1 worker                  {one:8.1f} runs/s")
    print(f"(b) 4 workers                 {four:8.1f} runs/s  {scale:.2f}×  "
          f"target ≥ {SCALE_TARGET}×  {'met' if scale >= SCALE_TARGET else 'NOT met'}")
    if args.chart and args.only is None:
        chart([
            ("(a) plain run", cost["plain"], "ms/run"),
            (f"(a) durable run ({ratio:.2f}×)", cost["durable"], "ms/run"),
            ("(b) 1 worker", one, "runs/s"),
            (f"(b) 4 workers ({scale:.2f}×)", four, "runs/s"),
        ], args.chart)  # fmt: skip
    return 0 if ratio <= OVERHEAD_TARGET and scale >= SCALE_TARGET else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per round for (a)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode for (a)")
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once for (a)")
    parser.add_argument("--jobs", type=int, default=80, help="runs to drain for (b)")
    parser.add_argument("--worker-concurrency", type=int, default=1,
                        help="runs at once per worker for (b)")
    parser.add_argument("--only", choices=["a", "b"], help="measure only (a) or (b)")
    parser.add_argument("--chart", type=Path, metavar="FILE.svg", help="write a bar chart")
    args = parser.parse_args()
    sys.exit(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
