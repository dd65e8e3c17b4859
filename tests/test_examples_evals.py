"""examples/eval_and_finetune.py runs offline: an eval, an export of its passing runs, a
valid training file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_eval_and_finetune_example_exports_only_passing_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTKIT_"))}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "eval_and_finetune.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "orders: 11/12 runs passed (91.7%)" in out
    assert "order-105   0/1" in out
    assert f"exported 11 passing runs to {tmp_path / 'train.jsonl'}" in out
    assert "validation: no issues" in out
    lines = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 11
    assert all(line["messages"][-1]["weight"] == 1 for line in lines)
    assert not any("105" in json.dumps(line) for line in lines)  # the failed run stays out
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["runs"] == 12
    assert "<svg" in (tmp_path / "report.html").read_text()
