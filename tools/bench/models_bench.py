"""Model backends beyond chat completions, measured side by side in one run.

1. Loop overhead, Responses vs chat: the standard workload (a user message, the model
   calls two tools in parallel, the results go back, the model answers) against the
   fake server in its own process, ``OpenAIResponsesModel`` and ``OpenAIChatModel``
   interleaved round by round. The figure is the client's CPU time per run (what
   agentkit itself costs; the server's time is not counted) and the wall time per run.
   Target: Responses within 10% of chat.
2. ``OpenAIEmbedder``: 1,000 short texts against the fake server; how many requests and
   how long (target: at most 3 requests).
3. ``LocalEmbedder``: 1,000 short texts in a fresh process, once with the engine on all
   cores and once on one thread (the default); texts per second and the process's peak
   RSS (model load included). On a machine busy with other work one thread can be faster:
   the engine's OpenMP threads wait for each other at every layer.

Run: ``python tools/bench/models_bench.py [--runs 200] [--texts 1000] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as bench_run  # noqa: E402  (tools/bench/run.py: the out-of-process fake server)

from agentkit import Agent, tool  # noqa: E402
from agentkit.models import Model, OpenAIChatModel, OpenAIResponsesModel  # noqa: E402
from agentkit.run import RunFinished  # noqa: E402

PROMPT = "What is the weather and the time in Paris?"
ANSWER = "It is sunny in Paris and the time is 12:00."


@tool
async def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    return f"Sunny, 21 C in {city}"


@tool
async def get_time(timezone: str) -> str:
    """Get the current time in a timezone.

    Args:
        timezone: IANA timezone name, e.g. "Europe/Paris".
    """
    return f"12:00 in {timezone}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def short_texts(count: int) -> list[str]:
    subjects = ["The cat", "Our shop", "The weather in Paris", "A new phone", "The train"]
    verbs = ["is", "was", "will be", "seems", "looks"]
    ends = ["great today.", "late again.", "sunny and warm.", "out of stock.", "on sale."]
    return [
        f"{subjects[i % 5]} {verbs[(i // 5) % 5]} {ends[(i // 25) % 5]} (note {i})"
        for i in range(count)
    ]


# --------------------------------------------------------------------------- 1. loop


async def _one_run(agent: Agent[str], stream: bool) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    if stream:
        output = ""
        async for event in agent.stream(PROMPT):
            if isinstance(event, RunFinished):
                output = event.result.output
    else:
        output = (await agent.run(PROMPT)).output
    assert output == ANSWER, output
    return time.perf_counter() - wall, time.process_time() - cpu


async def loop_overhead(base_url: str, runs: int, stream: bool) -> dict[str, Any]:
    backends: dict[str, Model] = {
        "chat": OpenAIChatModel("bench-model", base_url=base_url, api_key="sk-bench"),
        "responses": OpenAIResponsesModel("bench-model", base_url=base_url, api_key="sk-bench"),
    }
    agents = {name: Agent(model=model, tools=[get_weather, get_time])
              for name, model in backends.items()}
    for agent in agents.values():  # warm up: connections, imports, schema caches
        for _ in range(5):
            await _one_run(agent, stream)
    samples: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "cpu": []} for name in agents}
    rounds = 10
    for round_number in range(rounds):
        # Interleaved, alternating who goes first, so load changes hit both alike.
        order = list(agents) if round_number % 2 == 0 else list(reversed(agents))
        for name in order:
            for _ in range(max(1, runs // rounds)):
                wall, cpu = await _one_run(agents[name], stream)
                samples[name]["wall"].append(wall)
                samples[name]["cpu"].append(cpu)
        log(f"  loop ({'streamed' if stream else 'plain'}): round {round_number + 1}/{rounds}")
    result: dict[str, Any] = {}
    for name, series in samples.items():
        result[name] = {
            "wall_ms": statistics.median(series["wall"]) * 1000,
            "cpu_ms": statistics.median(series["cpu"]) * 1000,
            "runs": len(series["wall"]),
        }
    result["cpu_ratio"] = result["responses"]["cpu_ms"] / result["chat"]["cpu_ms"]
    result["wall_ratio"] = result["responses"]["wall_ms"] / result["chat"]["wall_ms"]
    return result


# --------------------------------------------------------------------------- 2. OpenAIEmbedder


async def openai_embedder(texts: int) -> dict[str, Any]:
    from agentkit.embeddings import OpenAIEmbedder
    from agentkit.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        embedder = OpenAIEmbedder(base_url=server.base_url, api_key="sk-bench")
        started = time.perf_counter()
        vectors = await embedder.embed(short_texts(texts))
        elapsed = time.perf_counter() - started
        requests = len(server.requests)
    assert len(vectors) == texts
    return {"texts": texts, "requests": requests, "seconds": elapsed}


# --------------------------------------------------------------------------- 3. LocalEmbedder


def local_embedder_child(texts: int, threads: int | None) -> None:
    """In a fresh process: load the model, embed ``texts`` short texts, print JSON."""
    from agentkit.embeddings import LocalEmbedder

    embedder = LocalEmbedder(threads=threads)
    items = short_texts(texts)
    started = time.perf_counter()
    asyncio.run(embedder.embed(items[:1]))  # loads the model
    loaded = time.perf_counter()
    done = 0
    batch = 100
    vectors: list[list[float]] = []
    for start in range(0, texts, batch):
        vectors += asyncio.run(embedder.embed_passages(items[start : start + batch]))
        done = min(texts, start + batch)
        log(f"  LocalEmbedder (threads={threads or 'all'}): {done}/{texts} texts")
    finished = time.perf_counter()
    norms = [sum(x * x for x in v) for v in vectors]
    assert len(vectors) == texts and all(abs(n - 1.0) < 1e-3 for n in norms)
    print(json.dumps({
        "texts": texts,
        "threads": threads or "all",
        "load_seconds": loaded - started,
        "texts_per_second": texts / (finished - loaded),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def local_embedder(texts: int, threads: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--local-embedder-child", str(texts), str(threads)],
        capture_output=True, text=True, timeout=3600, check=False,
    )
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != 0:
        raise RuntimeError(f"LocalEmbedder benchmark failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per backend and mode")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-local", action="store_true", help="skip LocalEmbedder")
    parser.add_argument("--local-embedder-child", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_embedder_child:
        texts, threads = args.local_embedder_child
        local_embedder_child(texts, threads or None)
        return

    results: dict[str, Any] = {}
    with bench_run.fake_server() as server:
        for stream in (False, True):
            key = "loop_streamed" if stream else "loop_plain"
            results[key] = asyncio.run(loop_overhead(server.base_url, args.runs, stream))
    results["openai_embedder"] = asyncio.run(openai_embedder(args.texts))
    if not args.skip_local:
        results["local_embedder"] = [local_embedder(args.texts, n) for n in (0, 1)]

    print("\nLoop overhead per run (median), Responses vs chat, same server, interleaved")
    print(f"{'mode':<10} {'backend':<10} {'client CPU ms':>14} {'wall ms':>9}")
    for key in ("loop_plain", "loop_streamed"):
        for name in ("chat", "responses"):
            row = results[key][name]
            print(f"{key[5:]:<10} {name:<10} {row['cpu_ms']:>14.2f} {row['wall_ms']:>9.2f}")
        print(f"{'':<10} {'ratio':<10} {results[key]['cpu_ratio']:>14.3f} "
              f"{results[key]['wall_ratio']:>9.3f}")
    emb = results["openai_embedder"]
    print(f"\nOpenAIEmbedder: {emb['texts']} texts in {emb['requests']} request(s), "
          f"{emb['seconds']:.2f} s")
    for loc in results.get("local_embedder", ()):
        print(f"LocalEmbedder (threads={loc['threads']}): {loc['texts_per_second']:.1f} "
              f"texts/s, peak RSS {loc['peak_rss_mb']:.0f} MB, model load "
              f"{loc['load_seconds']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
