"""A durable run that survives ``kill -9`` of its worker, with no side effect done twice.

    python examples/durable_kill9.py

The script submits a run whose agent sends three invoices (a slow tool, one call per
turn), starts a worker process, kills it with SIGKILL in the middle of the run, starts a
new worker, and prints the result: the worker replays the finished steps from their
records and goes on from the call in flight. The tool keys each invoice by
``ctx.idempotency_key`` (the same for every attempt of a call), so the invoice that was
being sent at the kill is not sent twice. Everything is offline: a scripted model, and a
SQLite store in a temporary folder (DBOS keeps its state next to it). With Postgres
(``PostgresStore``) the same code runs workers on many machines.

    python examples/durable_kill9.py worker DIR     # what the script starts (a worker)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentkit import Agent, Message, RunContext, ToolCall, tool
from agentkit.durable import DurableRunner
from agentkit.models import ModelRequest
from agentkit.testing import FunctionModel
from agentkit.threads import SQLiteStore

FOLDER = Path(os.environ.get("INVOICES_DIR") or tempfile.mkdtemp(prefix="durable-kill9-"))
SENT = FOLDER / "sent.txt"  # what the "invoice service" received


@tool
async def send_invoice(customer: str, ctx: RunContext[Any]) -> str:
    """Send an invoice to a customer (slowly, like a real service).

    Args:
        customer: Who gets the invoice.
    """
    await asyncio.sleep(0.5)
    key = ctx.idempotency_key
    # The service keeps the keys it has seen: a call run again after a crash is a no-op.
    seen = SENT.read_text().splitlines() if SENT.exists() else []
    if not any(line.endswith(f" {key}") for line in seen):
        with SENT.open("a") as f:
            f.write(f"invoice for {customer} {key}\n")
    return f"invoice sent to {customer}"


CUSTOMERS = ["Ada", "Grace", "Linus"]


def billing_model(request: ModelRequest) -> Message:
    sent = sum(1 for m in request.messages if m.role == "tool")
    if sent < len(CUSTOMERS):
        customer = CUSTOMERS[sent]
        return Message.assistant(None, [ToolCall(f"call_{sent}", "send_invoice",
                                                 f'{{"customer": "{customer}"}}')])
    return Message.assistant(f"Sent {sent} invoices.")


billing = Agent(name="billing", model=FunctionModel(billing_model), tools=[send_invoice])
runner = DurableRunner(SQLiteStore(FOLDER / "runs.db"), agents={"billing": billing})


def start_worker() -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, __file__, "worker", str(FOLDER)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "INVOICES_DIR": str(FOLDER)},
    )  # fmt: skip
    assert worker.stdout is not None
    worker.stdout.readline()  # "agentkit worker ...": it takes runs now
    return worker


async def main() -> None:
    handle = await runner.submit(
        "billing", "Send this month's invoices.", idempotency_key="2026-12"
    )
    worker = start_worker()
    while len(SENT.read_text().splitlines() if SENT.exists() else []) < 2:
        time.sleep(0.05)  # two invoices out, the third on its way
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    print(f"worker killed with SIGKILL; status: {await handle.status()}")
    worker = start_worker()  # on SQLite the restarted worker takes its runs back
    try:
        result = await handle.result(timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    print(f"status: {result.status}; answer: {result.output}")
    print("invoices sent:")
    for line in SENT.read_text().splitlines():
        print(" ", line.rsplit(" ", 1)[0])
    await runner.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        runner.serve()
    else:
        asyncio.run(main())
