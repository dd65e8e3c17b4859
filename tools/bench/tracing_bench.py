"""What tracing costs per turn, and that it costs nothing while off.

1. In one process, interleaved run by run, the loop workload of ``loop_bench.py`` (one
   tool call per turn, ScriptedModel, no HTTP) with tracing off and with tracing on
   (``instrument()`` with the OpenTelemetry SDK and an in-memory exporter, so every span
   is really built, ended and exported): the added time per turn (target ≤ 0.2 ms).
   For scale, the same run also times the SDK alone building the same spans (a chat and
   a tool span per turn, same attributes, no agentkit): the floor any tracing pays.
2. With ``--against OTHER_CHECKOUT`` (e.g. the main branch before hooks and tracing),
   side by side in subprocesses, alternating: ``loop_bench.py``'s ratio to the minimal
   loop and the time of ``import agentkit``, for this checkout and the other.

Run: ``python tools/bench/tracing_bench.py [--turns 2000] [--against ../main]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

from loop_bench import TURNS_PER_RUN, _agentkit_run  # noqa: E402


def _provider() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def _timed(turns: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    cpu = time.process_time()
    wall = await _agentkit_run(turns)
    return wall, time.process_time() - cpu


async def measure(total_turns: int) -> dict[str, float]:
    """Per-turn times with tracing off and on, interleaved run by run.

    Both the median wall time and the least CPU time over the runs are kept: on a shared
    machine other processes inflate wall times (and medians) by several times, while
    the least CPU time of many runs stays close to the code's own cost.
    """
    from agentkit.tracing import instrument, uninstrument

    provider, exporter = _provider()
    runs = max(1, total_turns // TURNS_PER_RUN)
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    for _ in range(5):  # warm-up
        await _agentkit_run(TURNS_PER_RUN)
    for index in range(runs):
        off.append(await _timed(TURNS_PER_RUN))
        instrument(tracer_provider=provider)
        try:
            on.append(await _timed(TURNS_PER_RUN))
        finally:
            uninstrument()
        spans = len(exporter.get_finished_spans())
        exporter.clear()
        # One run span, then a chat span per turn and a tool span per turn but the last.
        assert spans == 2 * TURNS_PER_RUN, spans
        if (index + 1) % max(1, runs // 10) == 0:
            print(f"  {index + 1}/{runs} runs", file=sys.stderr, flush=True)
    per_turn = 1000 / TURNS_PER_RUN
    off_wall = statistics.median(w for w, _ in off) * per_turn
    on_wall = statistics.median(w for w, _ in on) * per_turn
    off_cpu = min(c for _, c in off) * per_turn
    on_cpu = min(c for _, c in on) * per_turn
    return {
        "turns": runs * TURNS_PER_RUN,
        "off_wall_ms": off_wall,
        "on_wall_ms": on_wall,
        "off_cpu_ms": off_cpu,
        "on_cpu_ms": on_cpu,
        "sdk_floor_ms": sdk_floor(total_turns) * 1000,
    }


def sdk_floor(turns: int) -> float:
    """Seconds per turn for the SDK alone to build, end and export a turn's two spans."""
    from opentelemetry import trace

    provider, exporter = _provider()
    tracer = provider.get_tracer("floor")
    root = tracer.start_span("invoke_agent floor")
    parent = trace.set_span_in_context(root)
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "x",
            "gen_ai.request.model": "m"}
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
            "gen_ai.tool.call.id": "call_1", "gen_ai.tool.type": "function"}
    times = []
    for _ in range(max(1, turns // TURNS_PER_RUN)):
        started = time.process_time()
        for _ in range(TURNS_PER_RUN):
            span = tracer.start_span("chat m", context=parent, attributes=chat)
            span.set_attributes({"gen_ai.response.finish_reasons": ("tool_calls",),
                                 "gen_ai.usage.input_tokens": 1,
                                 "gen_ai.usage.output_tokens": 1})
            span.end()
            tracer.start_span("execute_tool lookup", context=parent, attributes=tool).end()
        times.append((time.process_time() - started) / TURNS_PER_RUN)
        exporter.clear()
    return min(times)


def _loop_ratio(checkout: Path, turns: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, str(checkout / "tools/bench/loop_bench.py"), "--turns", str(turns)],
        capture_output=True, text=True, env=env, check=True, cwd=checkout,
    ).stdout
    match = re.search(r"ratio: ([\d.]+)", out)
    assert match is not None, out
    return float(match.group(1))


def _import_ms(checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import agentkit"], env=env, check=True,
                   cwd=checkout)
    return (time.perf_counter() - started) * 1000


def compare(other: Path, rounds: int, turns: int) -> dict[str, float]:
    """Loop ratios (median) and import times (min) of this checkout and ``other``,
    measured alternately so both see the same machine load."""
    ratios: dict[str, list[float]] = {"this": [], "other": []}
    imports: dict[str, list[float]] = {"this": [], "other": []}
    for index in range(rounds):
        for name, checkout in (("this", REPO), ("other", other)):
            ratios[name].append(_loop_ratio(checkout, turns))
            imports[name] += [_import_ms(checkout) for _ in range(3)]
        print(f"  round {index + 1}/{rounds}", file=sys.stderr, flush=True)
    return {
        "loop_ratio_this": statistics.median(ratios["this"]),
        "loop_ratio_other": statistics.median(ratios["other"]),
        "import_ms_this": min(imports["this"]),
        "import_ms_other": min(imports["other"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000, help="turns per measurement")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5, help="alternations for --against")
    args = parser.parse_args()
    figures = anyio.run(measure, args.turns)
    added_cpu = figures["on_cpu_ms"] - figures["off_cpu_ms"]
    print(
        f"{figures['turns']} turns per mode, interleaved run by run\n"
        f"CPU per turn (least of the runs): off {figures['off_cpu_ms']:.3f} ms, on "
        f"{figures['on_cpu_ms']:.3f} ms; added by tracing {added_cpu:.3f} ms/turn "
        "(target ≤ 0.2 ms)\n"
        f"wall per turn (median): off {figures['off_wall_ms']:.3f} ms, on "
        f"{figures['on_wall_ms']:.3f} ms "
        f"(ratio {figures['on_wall_ms'] / figures['off_wall_ms']:.2f}×)\n"
        f"the SDK alone building the same spans: {figures['sdk_floor_ms']:.3f} ms/turn CPU "
        f"(added / SDK floor: {added_cpu / figures['sdk_floor_ms']:.2f}×)"
    )
    if args.against is not None:
        other = args.against.resolve()
        side = compare(other, args.rounds, 1000)
        print(
            f"loop_bench ratio to the minimal loop: {side['loop_ratio_this']:.2f}× here, "
            f"{side['loop_ratio_other']:.2f}× in {other}\n"
            f"import agentkit (process, min): {side['import_ms_this']:.0f} ms here, "
            f"{side['import_ms_other']:.0f} ms in {other} "
            f"({side['import_ms_this'] / side['import_ms_other']:.2f}×)"
        )


if __name__ == "__main__":
    main()
