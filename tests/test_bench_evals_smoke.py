"""tools/bench/evals_bench.py still measures what it claims to, at a tiny size."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "bench"))

import evals_bench  # tools/bench/evals_bench.py, not a package


def test_eval_overhead_and_export_cost_at_a_tiny_size() -> None:
    overhead = anyio.run(evals_bench.eval_overhead, 10, 5, 1)
    assert overhead["cases"] == 10 and overhead["bare_s"] > 0 and overhead["eval_s"] > 0
    export = evals_bench.export_cost(anyio.run(evals_bench.recorded_runs, 30))
    assert export["runs"] == 30 and export["mb"] > 0
