"""examples/durable_kill9.py: a run survives SIGKILL of its worker, each invoice sent once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dbos")

REPO = Path(__file__).resolve().parents[1]


def test_durable_example_survives_kill_9_without_sending_an_invoice_twice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTKIT_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["INVOICES_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "durable_kill9.py")],
        capture_output=True, text=True, env=env, timeout=240, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "worker killed with SIGKILL; status: in_progress",
        "status: completed; answer: Sent 3 invoices.",
        "invoices sent:",
        "  invoice for Ada",
        "  invoice for Grace",
        "  invoice for Linus",
    ]
    # The service saw each call once, under the key of its run and call.
    keys = [line.rsplit(" ", 1)[1] for line in (tmp_path / "sent.txt").read_text().splitlines()]
    assert [k.split(":")[1] for k in keys] == ["call_0", "call_1", "call_2"]
    assert len({k.split(":")[0] for k in keys}) == 1
