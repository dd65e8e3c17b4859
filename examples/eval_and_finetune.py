"""Evaluate a support agent, export its passing runs as fine-tuning data, validate the file.

    python examples/eval_and_finetune.py                     # offline: a stand-in model
    python examples/eval_and_finetune.py --out /tmp/evals    # where the files go
    OPENAI_API_KEY=sk-... python examples/eval_and_finetune.py

The dataset (examples/evals/orders.yaml) asks for the status of twelve orders; each case
checks that the agent looked the order up with the right id and that the answer gives the
status. The runs that pass are the conversations worth training on: they are exported in
OpenAI's chat fine-tuning format (the final answer weighted 1, the tool-calling turn 0)
and the file is checked the way OpenAI's data-preparation guide does.

Offline, a ``FunctionModel`` plays the model: it looks orders up, except that it answers
"is order N on its way?" from thin air (without the tool), so one case fails, as real
evals do. The bundled offline model would take minutes for this many runs.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import anyio

from agentkit import Agent, tool
from agentkit.evals import Dataset
from agentkit.finetune import export_jsonl, training_stats, validate_jsonl
from agentkit.models import Model, ModelRequest
from agentkit.testing import FunctionModel, tool_call_response

HERE = Path(__file__).resolve().parent
ORDERS = {101: "shipped", 102: "delivered", 103: "processing", 104: "shipped",
          105: "cancelled", 106: "delivered", 107: "shipped", 108: "processing",
          109: "delivered", 110: "shipped", 111: "returned", 112: "delivered"}


@tool
def lookup_order(order_id: int) -> str:
    """Look up the status of an order.

    Args:
        order_id: The order number, e.g. 101.
    """
    return ORDERS.get(order_id, "unknown")


def stand_in(request: ModelRequest) -> object:
    """The offline stand-in: calls the tool for the order named, then answers from it."""
    last = request.messages[-1]
    if last.role == "tool":
        asked = re.search(r"\d+", request.messages[-3].text)
        return f"Order {asked.group() if asked else '?'} is {last.text}."
    number = re.search(r"\d+", last.text)
    if "on its way" in last.text or number is None:
        return "Yes, it is on its way!"  # the stand-in's one bad habit
    return tool_call_response(("lookup_order", {"order_id": int(number.group())}))


def _model() -> Model | str:
    return "gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else FunctionModel(stand_in)


agent = Agent(
    name="orders",
    instructions="You answer questions about orders. Look the order up with lookup_order, "
    "then answer in one sentence: 'Order <id> is <status>.'",
    model=_model(),
    tools=[lookup_order],
)


async def main(out: Path) -> None:
    """Run the eval, save its reports, export and validate the training file."""
    out.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.load(HERE / "evals" / "orders.yaml")
    report = await dataset.run(agent, concurrency=4)
    report.print()
    report.save(out / "report.json")
    report.save(out / "report.html")

    train = out / "train.jsonl"
    count = export_jsonl([report], train, only=lambda run: run.passed)
    print(f"\nexported {count} passing runs to {train}")
    issues = validate_jsonl(train)
    print("validation: " + ("no issues" if not issues else f"{len(issues)} issue(s)"))
    for issue in issues:
        print(f"  {issue}")
    print(training_stats(train))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("eval-output"),
                        help="where the reports and train.jsonl go (default: %(default)s)")
    anyio.run(main, parser.parse_args().out)
