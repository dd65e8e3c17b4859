"""In-process overhead of agentkit's loop per turn, with a ScriptedModel and no HTTP.

Each turn is one model response with one tool call, then the tool's result goes back.
The figure is compared, in the same process, with a minimal hand-written loop over the
same ScriptedModel that only does what any non-blocking loop must (the sync tool still
runs in a worker thread; no validation, events or limits): that ratio is what the
regression guard in tests/test_perf_guard.py checks, since absolute times depend on the
machine.

Run: ``python tools/bench/loop_bench.py [--turns 1000]``
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from typing import Any

import anyio
import anyio.to_thread

from agentkit import Agent, Message, tool
from agentkit.models import ModelRequest
from agentkit.testing import ScriptedModel, text_response, tool_call_response

TURNS_PER_RUN = 10


@tool
def lookup(key: str, limit: int = 3) -> str:
    """Look a key up.

    Args:
        key: What to look up.
        limit: How many results.
    """
    return key * limit


def _script(turns: int) -> list[Any]:
    calls = [tool_call_response(("lookup", {"key": "ab", "limit": 2})) for _ in range(turns - 1)]
    return [*calls, text_response("done")]


async def _agentkit_run(turns: int) -> float:
    agent = Agent(model=ScriptedModel(_script(turns)), tools=[lookup], max_turns=turns)
    started = time.perf_counter()
    result = await agent.run("go")
    elapsed = time.perf_counter() - started
    assert result.output == "done" and result.turns == turns
    return elapsed


async def _baseline_run(turns: int) -> float:
    """The least a non-blocking loop can do: request, call the function in a worker
    thread, append, repeat."""
    model = ScriptedModel(_script(turns))
    definitions = [lookup.definition]
    started = time.perf_counter()
    messages = [Message.user("go")]
    while True:
        response = await model.request(ModelRequest(list(messages), definitions))
        messages.append(response.message)
        if not response.message.tool_calls:
            break
        for call in response.message.tool_calls:
            arguments = json.loads(call.arguments)
            call_tool = functools.partial(lookup.function, **arguments)
            text = await anyio.to_thread.run_sync(call_tool)
            messages.append(Message.tool(call.id, text))
    elapsed = time.perf_counter() - started
    assert len(messages) == 2 * turns
    return elapsed


async def measure(total_turns: int = 1000) -> dict[str, float]:
    """Median seconds per turn for agentkit and the baseline, interleaved run by run."""
    runs = max(1, total_turns // TURNS_PER_RUN)
    agentkit_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(5):  # warm-up: imports, caches, thread pool
        await _agentkit_run(TURNS_PER_RUN)
        await _baseline_run(TURNS_PER_RUN)
    for _ in range(runs):
        agentkit_times.append(await _agentkit_run(TURNS_PER_RUN) / TURNS_PER_RUN)
        baseline_times.append(await _baseline_run(TURNS_PER_RUN) / TURNS_PER_RUN)
    agentkit_median = statistics.median(agentkit_times)
    baseline_median = statistics.median(baseline_times)
    return {
        "turns": runs * TURNS_PER_RUN,
        "agentkit_ms_per_turn": agentkit_median * 1000,
        "baseline_ms_per_turn": baseline_median * 1000,
        "ratio": agentkit_median / baseline_median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000, help="turns to measure (≥ 1000)")
    args = parser.parse_args()
    figures = anyio.run(measure, args.turns)
    print(
        f"agentkit loop: {figures['agentkit_ms_per_turn']:.3f} ms/turn (median of "
        f"{figures['turns']} turns, one tool call per turn; target ≤ 0.3 ms)\n"
        f"minimal hand-written loop: {figures['baseline_ms_per_turn']:.3f} ms/turn\n"
        f"ratio: {figures['ratio']:.2f}×"
    )


if __name__ == "__main__":
    main()
