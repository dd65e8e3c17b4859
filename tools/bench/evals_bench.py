"""What do evals and fine-tuning export cost on top of the runs themselves?

Run: ``python tools/bench/evals_bench.py [--cases 1000] [--concurrency 50] [--runs 10000]``

1. Eval overhead: the same agent (one tool call, then an answer) against a
   FakeOpenAIServer over real HTTP, ``--cases`` inputs at ``--concurrency``: bare runs
   (``agent.run`` in a task group with a capacity limiter) and ``Dataset.run`` with three
   checks per case (tool_called, contains, max_turns), measured alternately, several
   rounds; the ratio of the medians. Target: ≤ 1.2.
2. Export: ``export_jsonl`` of ``--runs`` recorded runs (each a tool-calling conversation),
   then ``validate_jsonl`` and ``training_stats`` of the file. Target: export ≤ 5 s.

Prints a JSON summary on the last line (``--json`` prints only that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from agentkit import Agent, tool
from agentkit.evals import Case, Dataset, checks
from agentkit.finetune import export_jsonl, training_stats, validate_jsonl
from agentkit.models import OpenAIChatModel
from agentkit.testing.fake_openai import FakeOpenAIServer, Reply, text_reply, tool_call_reply


@tool
def lookup(order_id: int) -> str:
    """Look up an order."""
    return f"order {order_id}: shipped"


def handler(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return text_reply(f"It has {last['content'].split(': ')[-1]}.")
    number = int(last["content"].split()[-1].rstrip("?"))
    return tool_call_reply(("lookup", {"order_id": number}))


async def bare(agent: Agent[Any], inputs: list[str], concurrency: int) -> float:
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(text: str) -> None:
        async with limiter:
            await agent.run(text)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for text in inputs:
            group.start_soon(one, text)
    return time.perf_counter() - started


async def evaluated(agent: Agent[Any], dataset: Dataset, concurrency: int) -> float:
    started = time.perf_counter()
    report = await dataset.run(agent, concurrency=concurrency, progress=False)
    elapsed = time.perf_counter() - started
    assert report.pass_rate == 1.0, report.table()
    return elapsed


async def eval_overhead(cases: int, concurrency: int, rounds: int) -> dict[str, float]:
    with FakeOpenAIServer(handler=handler) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key=server.api_key)
        agent = Agent(model=model, tools=[lookup])
        inputs = [f"Where is order {i}?" for i in range(cases)]
        dataset = Dataset(
            [Case(f"order-{i}", text, checks=[checks.tool_called("lookup", {"order_id": i}),
                                              checks.contains("shipped"), checks.max_turns(3)])
             for i, text in enumerate(inputs)], name="bench")
        await bare(agent, inputs[:100], concurrency)  # warm up connections and caches
        bare_times, eval_times = [], []
        for _ in range(rounds):
            bare_times.append(await bare(agent, inputs, concurrency))
            eval_times.append(await evaluated(agent, dataset, concurrency))
        b, e = statistics.median(bare_times), statistics.median(eval_times)
        return {"cases": cases, "concurrency": concurrency, "bare_s": round(b, 3),
                "eval_s": round(e, 3), "eval_over_bare": round(e / b, 3)}


async def recorded_runs(count: int) -> list[Any]:
    with FakeOpenAIServer(handler=handler) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key=server.api_key)
        agent = Agent(instructions="You answer order questions.", model=model, tools=[lookup])
        distinct = [await agent.run(f"Where is order {i}?") for i in range(min(100, count))]
    # Export cost depends on the conversations, not on how they were produced.
    return [distinct[i % len(distinct)] for i in range(count)]


def export_cost(runs: list[Any]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        started = time.perf_counter()
        written = export_jsonl(runs, path, tools=[lookup])
        exported = time.perf_counter() - started
        started = time.perf_counter()
        issues = validate_jsonl(path)
        validated = time.perf_counter() - started
        started = time.perf_counter()
        stats = training_stats(path)
        counted = time.perf_counter() - started
        assert written == len(runs) and not issues, issues[:3]
        return {"runs": written, "export_s": round(exported, 3),
                "validate_s": round(validated, 3), "stats_s": round(counted, 3),
                "tokens_exact": stats.exact, "mb": round(path.stat().st_size / 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Eval and export overhead")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args()
    overhead = anyio.run(eval_overhead, args.cases, args.concurrency, args.rounds)
    export = export_cost(anyio.run(recorded_runs, args.runs))
    summary = {"eval": overhead, "export": export}
    if not args.json:
        print(f"eval of {overhead['cases']} cases at concurrency {overhead['concurrency']}: "
              f"bare {overhead['bare_s']} s, eval {overhead['eval_s']} s, "
              f"ratio {overhead['eval_over_bare']} (target <= 1.2)", file=sys.stderr)
        print(f"export of {export['runs']} runs: {export['export_s']} s (target <= 5 s); "
              f"validate {export['validate_s']} s; token stats {export['stats_s']} s "
              f"({'exact' if export['tokens_exact'] else 'estimated'}); "
              f"{export['mb']} MB", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
