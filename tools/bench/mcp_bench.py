"""MCP: agentkit's per-call overhead over the SDK's raw ``call_tool``, and import cost.

Target (issue 19): ``Tool.invoke`` of an MCP tool costs at most 1 ms (p50) more than the
official SDK's ``client.call_tool`` on the same session; ``import agentkit`` does not
import the SDK.

One stdio server (``agentkit mcp serve`` of the ``add`` tool below) and one session; raw
SDK calls and agentkit calls alternate (which goes first flips every round), so machine
drift hits both alike. Run: ``.venv/bin/python tools/bench/mcp_bench.py [--calls 1000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentkit import tool  # noqa: E402


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


tools = [add]


def _import_seconds(statement: str, rounds: int = 5) -> float:
    """Median wall time of ``statement`` in a fresh interpreter (minus an empty one)."""

    def once(code: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t = time.perf_counter(); {code}; "
             "print(time.perf_counter() - t)"],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        return float(out.stdout)

    return statistics.median(once(statement) for _ in range(rounds))


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _calls(count: int) -> tuple[list[float], list[float]]:
    from agentkit.mcp import MCPServer

    server = MCPServer.stdio(
        sys.executable, ["-m", "agentkit", "mcp", "serve", f"{__file__}:tools"], cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    raw: list[float] = []
    ours: list[float] = []
    async with server:
        (add_tool,) = server.tools()
        client = server._connection.client  # type: ignore[union-attr]  # the SDK session
        arguments = {"a": 1, "b": 2}
        text = json.dumps(arguments)

        async def sdk_call() -> None:
            start = time.perf_counter()
            result = await client.call_tool("add", arguments)
            raw.append(time.perf_counter() - start)
            assert result.content[0].text == "3"

        async def agentkit_call() -> None:
            start = time.perf_counter()
            result = await add_tool.invoke(text)
            ours.append(time.perf_counter() - start)
            assert result.content == "3"

        for _ in range(50):  # warm-up: connection, caches, validators
            await sdk_call()
            await agentkit_call()
        raw.clear()
        ours.clear()
        for i in range(count):
            first, second = (sdk_call, agentkit_call) if i % 2 else (agentkit_call, sdk_call)
            await first()
            await second()
            if (i + 1) % 200 == 0:
                print(f"  {i + 1}/{count} call pairs", file=sys.stderr)
    return raw, ours


def main() -> None:
    """Measure and print the figures (and ``--json`` for machines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="call pairs (%(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    import anyio

    print("timing imports in fresh interpreters...", file=sys.stderr)
    imports = {
        "import agentkit": _import_seconds("import agentkit"),
        "import agentkit.mcp": _import_seconds("import agentkit.mcp"),
        "import mcp (the SDK)": _import_seconds("import mcp"),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, agentkit, agentkit.mcp; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"calling {args.calls} times each way over stdio...", file=sys.stderr)
    raw, ours = anyio.run(_calls, args.calls)
    figures = {
        "calls": args.calls,
        "sdk_p50_ms": statistics.median(raw) * 1e3,
        "agentkit_p50_ms": statistics.median(ours) * 1e3,
        "sdk_p90_ms": _percentile(raw, 0.9) * 1e3,
        "agentkit_p90_ms": _percentile(ours, 0.9) * 1e3,
        "imports_s": imports,
        "sdk_modules_after_import_agentkit_mcp": loaded,
    }
    figures["overhead_p50_ms"] = figures["agentkit_p50_ms"] - figures["sdk_p50_ms"]
    figures["ratio_p50"] = figures["agentkit_p50_ms"] / figures["sdk_p50_ms"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"per call, {args.calls} alternating pairs on one stdio session:")
    print(f"  SDK client.call_tool   p50 {figures['sdk_p50_ms']:.3f} ms   "
          f"p90 {figures['sdk_p90_ms']:.3f} ms")
    print(f"  agentkit Tool.invoke   p50 {figures['agentkit_p50_ms']:.3f} ms   "
          f"p90 {figures['agentkit_p90_ms']:.3f} ms")
    print(f"  overhead p50 {figures['overhead_p50_ms']:+.3f} ms "
          f"(x{figures['ratio_p50']:.2f}; target <= 1 ms)")
    for name, seconds in imports.items():
        print(f"  {name:<22} {seconds * 1e3:7.1f} ms")
    print(f"  SDK modules loaded by `import agentkit, agentkit.mcp`: {loaded}")


if __name__ == "__main__":
    main()
