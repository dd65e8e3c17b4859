"""agentkit's benchmark suite against its peers: one command, ``make bench``.

What it does, in order:

1. Builds (once, and again when ``requirements-peers.txt`` changes) a venv for the peers in
   ``tools/bench/.venv-peers`` with the pinned ``openai``, ``openai-agents`` and
   ``pydantic-ai-slim[openai]``, and agentkit installed editable from this work tree, so
   every framework runs on the same interpreter and the same ``openai``/``httpx``.
2. Starts the fake OpenAI server (:mod:`agentkit.testing.fake_openai`, standard
   parallel-tools workload) in its own process, so its CPU never shares the clients' GIL,
   and records its CPU time around every measurement to report its share.
3. Times ``import <framework>`` in fresh processes.
4. Runs the workload (one run = user message → 2 parallel tool calls → results → final
   answer, 2 HTTP requests) with each framework, sequential and at concurrency 50,
   streamed and not. One process per (framework, mode); the order of frameworks rotates
   each round, so machine drift hits all alike; medians over ``--rounds`` processes.
5. Starts 1,000 agentkit runs at once (and the hand-written loop for reference).
6. Runs ``loop_bench.py`` and ``schema_bench.py`` and keeps what they print.
7. Prints the table, saves the raw figures in ``tools/bench/results/`` (git-ignored) and,
   unless ``--no-docs``, writes ``docs/performance.md`` and ``docs/performance.png``.

Usage: ``python tools/bench/run.py [--rounds 3] [--runs 100] [--no-docs]``; ``--help``
lists the rest (a quick check: ``--rounds 1 --runs 20 --concurrent-runs 50 --burst 0
--no-docs``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
PEERS = BENCH / "peers"
VENV = BENCH / ".venv-peers"
VENV_PY = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements-peers.txt"
RESULTS = BENCH / "results"

#: Display name → (peer script, module whose import is timed).
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "hand-written loop": ("handwritten.py", "openai"),
    "agentkit": ("agentkit_peer.py", "agentkit"),
    "openai-agents": ("openai_agents_peer.py", "agents"),
    "pydantic-ai": ("pydantic_ai_peer.py", "pydantic_ai"),
}
BASELINE = "hand-written loop"


@dataclass(frozen=True)
class Mode:
    """One way of driving the workload."""

    concurrency: int
    stream: bool

    @property
    def label(self) -> str:
        """Short name used in tables and the plot."""
        where = "sequential" if self.concurrency == 1 else f"concurrency {self.concurrency}"
        return f"{where}, {'streamed' if self.stream else 'not streamed'}"


MODES = (Mode(1, False), Mode(1, True), Mode(50, False), Mode(50, True))


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the final table."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the peers' venv


def ensure_venv() -> None:
    """Create or refresh the peers' venv when the pinned requirements changed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements-sha256"
    if VENV_PY.exists() and stamp.exists() and stamp.read_text() == digest:
        return
    log(f"building the peers' venv in {VENV.relative_to(ROOT)} (once) ...")
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "--disable-pip-version-check", "--quiet", "install"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    # --no-deps: agentkit's dependencies are pinned in the requirements file instead.
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    stamp.write_text(digest)


# --------------------------------------------------------------------------- the server


def serve(port: int) -> None:
    """Run the fake server until stdin closes (that is, until run.py exits or dies)."""
    import threading

    from agentkit.testing.fake_openai import FakeOpenAIServer, parallel_tools_handler

    server = FakeOpenAIServer(handler=parallel_tools_handler(), port=port)
    with server:
        print(server.base_url, flush=True)
        done = threading.Event()

        def forget() -> None:
            # The server records every request; a long suite would grow it without bound.
            while not done.wait(2.0):
                server.clear()

        threading.Thread(target=forget, daemon=True).start()
        sys.stdin.read()
        done.set()


@dataclass
class Server:
    """The fake server's process, and how much CPU it has used."""

    process: subprocess.Popen[str]
    base_url: str

    def cpu_seconds(self) -> float:
        """CPU time of the server process so far, all threads.

        Read from each thread's schedstat (nanoseconds) rather than ``/proc/PID/stat``,
        whose clock ticks (10 ms) are too coarse for a few hundred requests.
        """
        total_ns = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended between listing and reading
        return total_ns / 1e9


@contextmanager
def fake_server() -> Iterator[Server]:
    """Start ``run.py --serve`` with the project's interpreter and yield its handle."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the fake server did not start (printed {base_url!r})")
        yield Server(process, base_url)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# --------------------------------------------------------------------------- measurements


def run_json(command: Sequence[str], timeout: float = 300) -> dict[str, Any]:
    """Run a measurement process and parse the JSON object it prints last."""
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=PEERS, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def import_ms(module: str) -> float:
    """Milliseconds to import ``module`` in a fresh interpreter (interpreter start excluded)."""
    code = (
        f"import time; t = time.perf_counter(); import {module}; "
        "print('{\"ms\": %f}' % ((time.perf_counter() - t) * 1000))"
    )
    return float(run_json([str(VENV_PY), "-c", code])["ms"])


def rotate(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at position ``by`` (wrapping), so each takes its turn first."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def measure_imports(frameworks: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """``import`` times of each framework (and agentkit with openai), interleaved."""
    # pip byte-compiles the peers when it installs them; agentkit is installed editable,
    # so compile it too, or its import would be timed with a source compile included.
    subprocess.run(
        [str(VENV_PY), "-m", "compileall", "-q", str(ROOT / "agentkit")],
        check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )
    modules = {name: FRAMEWORKS[name][1] for name in frameworks}
    if "agentkit" in modules:
        modules["agentkit + openai"] = "agentkit, openai"
    times: dict[str, list[float]] = {name: [] for name in modules}
    for round_ in range(rounds):
        for name in rotate(list(modules), round_):
            times[name].append(import_ms(modules[name]))
    return times


def measure_workload(
    server: Server, frameworks: Sequence[str], modes: Sequence[Mode], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every (framework, mode) once per round, frameworks rotating; one process each."""
    samples: list[dict[str, Any]] = []
    total = args.rounds * len(modes) * len(frameworks)
    for round_ in range(args.rounds):
        for mode in modes:
            for name in rotate(frameworks, round_):
                runs = args.runs if mode.concurrency == 1 else args.concurrent_runs
                command = [
                    str(VENV_PY),
                    FRAMEWORKS[name][0],
                    "--base-url",
                    server.base_url,
                    "--runs",
                    str(runs),
                    "--concurrency",
                    str(mode.concurrency),
                ]
                if mode.stream:
                    command.append("--stream")
                cpu_before = server.cpu_seconds()
                sample = run_json(command)
                server_cpu = server.cpu_seconds() - cpu_before
                # The server's CPU covers the warm-up runs too.
                measured = sample["runs"] + sample["warmup_runs"]
                sample.update(
                    framework=name,
                    mode=mode.label,
                    round=round_,
                    server_cpu_ms_per_run=server_cpu / measured * 1000,
                )
                samples.append(sample)
                log(
                    f"[{len(samples)}/{total}] {name:18} {mode.label:32} "
                    f"{sample['ms_per_run']:7.2f} ms/run, "
                    f"client CPU {sample['client_cpu_ms_per_run']:6.2f} ms/run"
                )
    return samples


def measure_burst(
    server: Server, frameworks: Sequence[str], rounds: int, runs: int
) -> list[dict[str, Any]]:
    """1,000 (``runs``) concurrent runs in one process, ``rounds`` processes each."""
    peer_names = {"agentkit": "agentkit", BASELINE: "handwritten"}
    chosen = [name for name in peer_names if name in frameworks]
    samples = []
    for round_ in range(rounds):
        for name in rotate(chosen, round_):
            command = [
                str(VENV_PY),
                "concurrent_burst.py",
                "--framework",
                peer_names[name],
                "--base-url",
                server.base_url,
                "--runs",
                str(runs),
            ]
            cpu_before = server.cpu_seconds()
            sample = run_json(command, timeout=600)
            sample["server_cpu_s"] = server.cpu_seconds() - cpu_before
            sample["framework"] = name
            samples.append(sample)
            log(
                f"burst {name:18} {sample['completed']}/{sample['runs']} completed, "
                f"{sample['runs_per_s']:.0f} runs/s, {sample['kb_per_run']:.0f} KB/run"
            )
    return samples


def side_benchmarks() -> dict[str, str]:
    """What loop_bench.py and schema_bench.py print (agentkit only, in-process)."""
    outputs = {}
    for script in ("loop_bench.py", "schema_bench.py"):
        path = BENCH / script
        if not path.exists():
            continue
        completed = subprocess.run(
            [sys.executable, str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        text = completed.stdout.strip() or completed.stderr.strip()[-2000:]
        outputs[script] = text
        log(f"{script}: {text}")
    return outputs


# --------------------------------------------------------------------------- summary


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def summarize(
    samples: list[dict[str, Any]], imports: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """One row per (mode, framework): medians over processes and the ratio to the baseline."""
    rows = []
    for mode in dict.fromkeys(s["mode"] for s in samples):
        in_mode = [s for s in samples if s["mode"] == mode]
        baseline = median([s["ms_per_run"] for s in in_mode if s["framework"] == BASELINE])
        baseline_cpu = median(
            [s["client_cpu_ms_per_run"] for s in in_mode if s["framework"] == BASELINE]
        )
        for name in dict.fromkeys(s["framework"] for s in in_mode):
            mine = [s for s in in_mode if s["framework"] == name]
            ms = median([s["ms_per_run"] for s in mine])
            cpu = median([s["client_cpu_ms_per_run"] for s in mine])
            rows.append(
                {
                    "mode": mode,
                    "framework": name,
                    "processes": len(mine),
                    "runs": mine[0]["runs"],
                    "ms_per_run": ms,
                    "ms_all": sorted(s["ms_per_run"] for s in mine),
                    "x_baseline": ms / baseline,
                    "cpu_ms_per_run": cpu,
                    "cpu_x_baseline": cpu / baseline_cpu,
                    "peak_rss_mb": median([s["peak_rss_mb"] for s in mine]),
                    "import_ms": median(imports.get(name, [])),
                    "server_cpu_ms_per_run": median([s["server_cpu_ms_per_run"] for s in mine]),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| mode | framework | ms per run | fastest–slowest process | × hand-written | "
        "client CPU ms per run | CPU × hand-written | peak RSS MB | import ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        spread = f"{min(row['ms_all']):.2f}–{max(row['ms_all']):.2f}"
        lines.append(
            f"| {row['mode']} | {row['framework']} | {row['ms_per_run']:.2f} | {spread} | "
            f"{row['x_baseline']:.2f} | {row['cpu_ms_per_run']:.2f} | "
            f"{row['cpu_x_baseline']:.2f} | {row['peak_rss_mb']:.0f} | {row['import_ms']:.0f} |"
        )
    return "\n".join(lines)


def server_share(rows: list[dict[str, Any]]) -> str:
    """How much of a run's time the fake server spends, per mode, against the baseline."""
    lines = []
    for row in rows:
        if row["framework"] != BASELINE:
            continue
        share = row["server_cpu_ms_per_run"] / row["ms_per_run"] * 100
        lines.append(
            f"- {row['mode']}: {row['server_cpu_ms_per_run']:.2f} ms of server CPU per run, "
            f"{share:.0f}% of the hand-written loop's {row['ms_per_run']:.2f} ms"
        )
    return "\n".join(lines)


def burst_summary(samples: list[dict[str, Any]]) -> str:
    """The 1,000-concurrent-runs figures as a Markdown table."""
    lines = [
        "| framework | runs completed | runs/s | KB per in-flight run | baseline RSS MB | "
        "peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(s["framework"] for s in samples):
        mine = [s for s in samples if s["framework"] == name]
        completed = (
            f"{sum(s['completed'] for s in mine):,}/{sum(s['runs'] for s in mine):,} "
            f"({len(mine)} processes)"
        )
        lines.append(
            f"| {name} | {completed} | {median([s['runs_per_s'] for s in mine]):.0f} | "
            f"{median([s['kb_per_run'] for s in mine]):.0f} | "
            f"{median([s['baseline_rss_mb'] for s in mine]):.0f} | "
            f"{median([s['peak_rss_mb'] for s in mine]):.0f} |"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Versions of everything measured, read from the peers' venv."""
    code = (
        "import json, sys; from importlib.metadata import version as v; "
        "names = ['openai', 'openai-agents', 'pydantic-ai-slim', 'agentkit', 'httpx2', "
        "'httpx', 'pydantic', 'anyio']; out = {}\n"
        "for n in names:\n"
        "    try: out[n] = v(n)\n"
        "    except Exception: pass\n"
        "out['python'] = sys.version.split()[0]; print(json.dumps(out))"
    )
    return run_json([str(VENV_PY), "-c", code])


# --------------------------------------------------------------------------- docs

_METHOD = """\
**Workload.** One run is: user message → the model calls `get_weather` and `get_time` in
parallel → both tool results go back → the model answers with text. That is 2 HTTP
requests per run. Both tools are `async def` functions returning a short string, the same
functions for every framework; each script checks every final answer and that exactly 2
tool calls ran per run, so a framework that skips work cannot post a figure.

**Server.** `agentkit.testing.fake_openai.FakeOpenAIServer` with its
`parallel_tools_handler` (the standard workload), in its own process so its CPU never
shares a client's GIL. It answers instantly; streamed requests get real SSE chunks (text
one word per chunk, tool arguments in 3 fragments, a usage chunk). Its own CPU time is
read from `/proc` around every measurement: see *The fake server's share* below.

**Frameworks.** Each has a small script in `tools/bench/peers/`, written the way its
documentation shows:

- *hand-written loop*: `openai.AsyncOpenAI().chat.completions.create(...)`, the tool
  calls run with `asyncio.gather`, results appended as `tool` messages, repeat.
- *agentkit*: `Agent(model=OpenAIChatModel("bench-model", base_url=..., api_key=...),
  tools=[...])`, `await agent.run(...)`; streamed: `agent.stream(...)`.
- *openai-agents*: `Agent(..., model=OpenAIChatCompletionsModel(...))`, `Runner.run`;
  streamed: `Runner.run_streamed(...).stream_events()`. Tracing is disabled
  (`set_tracing_disabled(True)`): on by default it would upload traces to OpenAI.
- *pydantic-ai*: `Agent(OpenAIChatModel(..., provider=OpenAIProvider(...)), tools=[...])`,
  `await agent.run(...)`; streamed: `agent.run_stream_events(...)` (which streams every
  model response and runs to completion).

All four run on the same interpreter in the same venv (`tools/bench/.venv-peers`, pinned
by `tools/bench/requirements-peers.txt`, agentkit installed editable from the work tree),
so they share the same `openai`, `httpx` and `pydantic`, on plain `asyncio`.

**Measurement.** One process per (framework, mode): it imports the framework, warms up
(20 runs, or 50 at concurrency 50: the connection pool is open, caches are warm), then
times N runs. *ms per run* is the wall time of those N runs divided by N: at
concurrency 50 (50 runs in flight at all times, one `asyncio` task each) it is the
inverse of throughput. *Client CPU ms per run* is the process's user + system CPU over
the same runs: it does not depend on how busy the rest of the machine is, which makes it
the steadier figure on a shared machine. *Peak RSS* is the process's `ru_maxrss`.
*Import ms* is `import <package>` in a fresh interpreter (interpreter start-up excluded),
median of {import_rounds} processes; agentkit imports `openai` only when a model is first
used, so "agentkit + openai" is also shown. Each round runs every framework once per mode,
the frameworks' order rotating from round to round, so drift of the machine hits all
alike; the table shows medians over {rounds} rounds (processes), N = {runs} timed runs
per sequential process and {concurrent_runs} per concurrency-50 process.

**1,000 concurrent runs.** One process warms up (20 runs), measures its RSS, starts
{burst} non-streamed runs at once with `asyncio.gather` and waits for all of them.
*KB per in-flight run* is (peak RSS − RSS before the burst) / {burst}: everything each
extra concurrent run costs, its HTTP connection included ({burst_rounds} processes,
median)."""


def headline(rows: list[dict[str, Any]]) -> str:
    """One sentence per framework: its range of ratios to the hand-written loop."""
    lines = []
    for name in dict.fromkeys(row["framework"] for row in rows):
        if name == BASELINE:
            continue
        wall = [row["x_baseline"] for row in rows if row["framework"] == name]
        cpu = [row["cpu_x_baseline"] for row in rows if row["framework"] == name]
        lines.append(
            f"- **{name}**: {min(wall):.2f}–{max(wall):.2f} × the hand-written loop's time "
            f"per run across the {len(wall)} modes ({min(cpu):.2f}–{max(cpu):.2f} × its CPU)."
        )
    return "\n".join(lines)


def _versions_md(found: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in found.items())


def write_docs(
    report: dict[str, Any], saved: Path, rows: list[dict[str, Any]], burst: list[dict[str, Any]]
) -> None:
    """Write docs/performance.md and, through plot.py, docs/performance.png."""
    docs = ROOT / "docs"
    subprocess.run(
        [str(VENV_PY), str(BENCH / "plot.py"), str(saved), str(docs / "performance.png")],
        check=True,
    )
    settings = report["settings"]
    imports = report["imports_ms"]
    machine = report["machine"]
    load = ", ".join(f"{x:.1f}" for x in machine["load_average_at_end"])
    parts = [
        "# Performance",
        "",
        "<!-- Generated by tools/bench/run.py (`make bench`); edit that script, not this file. -->",
        "",
        "What an agent framework costs next to the model, measured against an instant "
        "local OpenAI-compatible server, so that only the framework's own work (building "
        "requests, parsing responses, running tools, bookkeeping) is timed. Run it yourself "
        f"with `make bench` (about {report['elapsed_s'] / 60:.0f} minutes on 2 cores).",
        "",
        f"Measured {report['date']} on {machine['cpus']} CPUs ({machine['platform']}), "
        f"load average at the end {load}. Versions: {_versions_md(report['versions'])}.",
        "",
        "## Results",
        "",
        headline(rows),
        "",
        table(rows),
        "",
        "*ms per run* is wall time; on a machine shared with other work it moves from "
        "process to process (see the fastest–slowest column), while *client CPU ms per "
        "run* stays put, so read the two together.",
        "",
        "![ms per run by framework and mode](performance.png)",
        "",
        "## Import time",
        "",
        "| import | ms (median) |",
        "|---|---:|",
        *(
            f"| `{FRAMEWORKS[name][1] if name in FRAMEWORKS else 'agentkit, openai'}` "
            f"({name}) | {median(times):.0f} |"
            for name, times in imports.items()
        ),
        "",
    ]
    if burst:
        parts += [f"## {settings['burst']:,} concurrent runs", "", burst_summary(burst), ""]
    if report["side"]:
        parts += ["## agentkit in process (no HTTP)", ""]
        for script, text in report["side"].items():
            parts += [f"`tools/bench/{script}`:", "", "```text", text, "```", ""]
    parts += [
        "## The fake server's share",
        "",
        "CPU time of the server process per run. In the sequential modes every "
        "framework's wall time includes it (the client waits for each answer); at "
        "concurrency 50 it runs on the other core while the client works; the client CPU "
        "column never includes it. At this share the stock `FakeOpenAIServer` is used "
        "rather than a dedicated faster server.",
        "",
        server_share(rows),
        "",
        "## Method",
        "",
        _METHOD.format(
            import_rounds=len(next(iter(imports.values()), [])),
            rounds=settings["rounds"],
            runs=settings["runs"],
            concurrent_runs=settings["concurrent_runs"],
            burst=settings["burst"],
            burst_rounds=settings["burst_rounds"],
        ),
        "",
    ]
    (docs / "performance.md").write_text("\n".join(parts))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="processes per measurement")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per sequential process")
    parser.add_argument(
        "--concurrent-runs", type=int, default=200, help="timed runs per concurrency-50 process"
    )
    parser.add_argument("--burst", type=int, default=1000, help="runs started at once (0: skip)")
    parser.add_argument("--burst-rounds", type=int, default=3)
    parser.add_argument(
        "--frameworks",
        nargs="+",
        choices=list(FRAMEWORKS),
        default=list(FRAMEWORKS),
        metavar="NAME",
        help=f"subset of: {', '.join(FRAMEWORKS)}",
    )
    parser.add_argument("--no-side", action="store_true", help="skip loop/schema benchmarks")
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="do not rewrite docs/performance.md and docs/performance.png",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the whole suite."""
    args = parse_args(argv)
    if args.serve:
        serve(0)
        return
    frameworks = list(args.frameworks)
    if BASELINE not in frameworks:
        frameworks.insert(0, BASELINE)
    started = time.perf_counter()
    ensure_venv()
    log("timing imports ...")
    imports = measure_imports(frameworks, max(5, args.rounds))
    with fake_server() as server:
        log(f"fake server at {server.base_url} (pid {server.process.pid})")
        samples = measure_workload(server, frameworks, MODES, args)
        burst = (
            measure_burst(server, frameworks, args.burst_rounds, args.burst) if args.burst else []
        )
    side = {} if args.no_side else side_benchmarks()
    rows = summarize(samples, imports)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {
            "rounds": args.rounds,
            "runs": args.runs,
            "concurrent_runs": args.concurrent_runs,
            "burst": args.burst,
            "burst_rounds": args.burst_rounds,
        },
        "versions": versions(),
        "imports_ms": imports,
        "rows": rows,
        "samples": samples,
        "burst": burst,
        "side": side,
        "elapsed_s": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved.write_text(json.dumps(report, indent=1))
    print(table(rows))
    print()
    print("Fake server's CPU per run:")
    print(server_share(rows))
    if burst:
        print()
        print(burst_summary(burst))
    print(f"\nraw figures: {saved.relative_to(ROOT)}; took {report['elapsed_s']:.0f} s")
    if not args.no_docs:
        write_docs(report, saved, rows, burst)
        log("wrote docs/performance.md and docs/performance.png")


if __name__ == "__main__":
    main()
