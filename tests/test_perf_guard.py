"""Regression guards for speed, as ratios measured side by side in this process.

Absolute times depend on the machine; these compare agentkit with a floor measured in the
same run, with bounds loose enough for noise but tight enough that a 5× slowdown fails.
The real figures come from ``make bench`` (tools/bench/).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]


def _load_bench(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loop_overhead_stays_near_a_hand_written_loop() -> None:
    figures = anyio.run(_load_bench("loop_bench").measure, 300)
    # Measured at ~1.2× a loop that only runs the sync tool in a worker thread (no
    # validation, events or limits); a loop 5× slower than today would be ~6×.
    assert figures["ratio"] < 3, figures


def _import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return min(runs)


def test_import_is_light_and_does_not_import_openai() -> None:
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, agentkit; print('openai' in sys.modules, 'xllamacpp' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert check.stdout.split() == ["False", "False"]
    agentkit_s = _import_seconds("import agentkit")
    floor_s = _import_seconds(
        "import anyio, docstring_parser; from pydantic import BaseModel, TypeAdapter"
    )
    # agentkit costs ~1.6-2× the dependencies it cannot avoid (pydantic is most of it,
    # whether or not its own bytecode is cached); 5× slower own code would be ~5×.
    assert agentkit_s < 3 * floor_s, (agentkit_s, floor_s)
