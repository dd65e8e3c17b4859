"""The benchmark suite (tools/bench) still measures what it claims to.

The peers that need their own venv (openai-agents, pydantic-ai) are not run here; the
hand-written loop and agentkit run with the project's interpreter, against an in-process
fake server, for a few runs each, so the suite cannot silently rot as agentkit changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit.testing.fake_openai import FakeOpenAIServer, parallel_tools_handler

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench"
sys.path.insert(0, str(BENCH))

import run as bench_run  # noqa: E402  (tools/bench/run.py, not a package)

RUNS = 3
WARMUP = 1


def _peer(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=BENCH / "peers",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("script", ["handwritten.py", "agentkit_peer.py"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_peer_runs_the_workload_two_requests_per_run(script: str, stream: bool) -> None:
    with FakeOpenAIServer(handler=parallel_tools_handler()) as server:
        flags = ["--stream"] if stream else []
        done = _peer(
            script,
            "--base-url",
            server.base_url,
            "--runs",
            str(RUNS),
            "--warmup",
            str(WARMUP),
            *flags,
        )
        requests = server.requests
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["runs"] == RUNS and result["stream"] is stream
    assert result["ms_per_run"] > 0 and result["peak_rss_mb"] > 10

    assert len(requests) == 2 * (RUNS + WARMUP)
    for first, second in zip(requests[::2], requests[1::2], strict=True):
        for request in (first, second):
            assert bool(request.body.get("stream")) is stream
            assert {t["function"]["name"] for t in request.body["tools"]} == {
                "get_weather",
                "get_time",
            }
        assert first.body["messages"][-1]["role"] == "user"
        # Both tool results go back in one request, one per call id.
        calls = second.body["messages"][-3]["tool_calls"]
        results = second.body["messages"][-2:]
        assert [r["role"] for r in results] == ["tool", "tool"]
        assert {r["tool_call_id"] for r in results} == {c["id"] for c in calls}


def test_peer_refuses_to_report_a_run_with_the_wrong_answer() -> None:
    with FakeOpenAIServer(handler=parallel_tools_handler(answer="Something else.")) as server:
        done = _peer("agentkit_peer.py", "--base-url", server.base_url, "--runs", "2")
    assert done.returncode != 0
    assert "unexpected final answer 'Something else.'" in done.stderr


def test_burst_completes_every_run_and_reports_memory_per_run() -> None:
    with FakeOpenAIServer(handler=parallel_tools_handler()) as server:
        done = _peer(
            "concurrent_burst.py",
            "--framework",
            "agentkit",
            "--base-url",
            server.base_url,
            "--runs",
            "40",
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["completed"] == 40 and result["failures"] == []
    assert result["tool_calls"] == 80
    assert result["runs_per_s"] > 0
    assert result["kb_per_run"] == pytest.approx(
        (result["peak_rss_mb"] - result["baseline_rss_mb"]) * 1024 / 40
    )


def _sample(framework: str, mode: str, ms: float, cpu: float) -> dict[str, Any]:
    return {
        "framework": framework,
        "mode": mode,
        "runs": 100,
        "ms_per_run": ms,
        "client_cpu_ms_per_run": cpu,
        "peak_rss_mb": 50.0,
        "server_cpu_ms_per_run": 0.5,
    }


def test_summary_takes_medians_and_compares_with_the_hand_written_loop_of_its_mode() -> None:
    samples = [
        _sample("hand-written loop", "seq", 4.0, 3.0),
        _sample("hand-written loop", "seq", 5.0, 4.0),
        _sample("hand-written loop", "seq", 40.0, 5.0),  # an outlier process
        _sample("agentkit", "seq", 2.0, 2.0),
        _sample("agentkit", "seq", 2.5, 2.0),
        _sample("agentkit", "seq", 3.0, 2.0),
        _sample("hand-written loop", "c50", 10.0, 8.0),
        _sample("agentkit", "c50", 5.0, 4.0),
    ]
    rows = bench_run.summarize(samples, {"agentkit": [200.0, 100.0, 150.0]})
    by_key = {(r["mode"], r["framework"]): r for r in rows}
    assert by_key[("seq", "hand-written loop")]["ms_per_run"] == 5.0
    assert by_key[("seq", "agentkit")]["x_baseline"] == pytest.approx(0.5)
    assert by_key[("seq", "agentkit")]["cpu_x_baseline"] == pytest.approx(0.5)
    assert by_key[("c50", "agentkit")]["x_baseline"] == pytest.approx(0.5)
    assert by_key[("seq", "agentkit")]["import_ms"] == 150.0
    table = bench_run.table(rows)
    assert "| seq | agentkit | 2.50 | 2.00–3.00 | 0.50 | 2.00 | 0.50 |" in table


def test_frameworks_take_turns_going_first() -> None:
    names = ["a", "b", "c"]
    assert [bench_run.rotate(names, r)[0] for r in range(3)] == ["a", "b", "c"]
    assert sorted(bench_run.rotate(names, 5)) == names
