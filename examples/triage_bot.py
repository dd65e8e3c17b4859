"""A help desk of three agents: triage reads the question and hands the conversation to
billing or to support, which answers. Shows handoffs, the switch as a stream event, and
hooks that print each step.

    python examples/triage_bot.py                          # a billing question
    python examples/triage_bot.py "My app crashes on start"
    OPENAI_API_KEY=sk-... python examples/triage_bot.py

Offline it runs the bundled SmolLM2-135M (``agentkit models pull`` fetches it once). That
small model rarely decides on its own to call a tool, so offline the triage agent is made
to call one (``tool_choice="required"``: its only tools are the two handoffs); which one
it picks is up to the model.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentkit import Agent, HandoffOccurred, ModelSettings, RunFinished, RunHooks, TextDelta
from agentkit.handoffs import drop_tool_calls, handoff

OFFLINE = not os.environ.get("OPENAI_API_KEY")
MODEL = "local" if OFFLINE else "gpt-4o-mini"
SHORT = ModelSettings(max_tokens=40) if OFFLINE else None


class Steps(RunHooks):
    """Prints each tool call as it starts."""

    def on_tool_start(self, ctx: Any, call: Any) -> None:
        print(f"  [{ctx.agent_name}, turn {ctx.turn}: calls {call.name}]")


billing: Agent[str] = Agent(
    name="billing",
    instructions="You answer questions about invoices, payments and refunds, in one or "
    "two short sentences.",
    description="Invoices, payments, refunds.",
    model=MODEL,
    settings=SHORT,
)
support: Agent[str] = Agent(
    name="support",
    instructions="You help with technical problems: crashes, errors, logins. Answer in "
    "one or two short sentences.",
    description="Technical problems with the app.",
    model=MODEL,
    settings=SHORT,
)
triage: Agent[str] = Agent(
    name="triage",
    instructions="You route the user's question: hand it to billing for money matters, "
    "to support for technical problems. Do not answer it yourself.",
    model=MODEL,
    # The agent taking over is handed the conversation without the routing call.
    handoffs=[handoff(billing, input_filter=drop_tool_calls),
              handoff(support, input_filter=drop_tool_calls)],
    settings=ModelSettings(tool_choice="required", max_tokens=40) if OFFLINE else None,
    hooks=[Steps()],
)


async def main(question: str) -> None:
    """Ask the help desk ``question`` and stream the answer."""
    print(f"you> {question}  [model: {triage.model.name}]")
    async for event in triage.stream(question):
        if isinstance(event, HandoffOccurred):
            print(f"handoff: {event.from_agent} -> {event.to_agent}")
            print(f"{event.to_agent}> ", end="", flush=True)
        elif isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, RunFinished):
            result = event.result
            print()
            agent = result.last_agent.name if result.last_agent else "?"
            print(f"answered by {agent} in {result.turns} turns, "
                  f"{result.usage.total_tokens} tokens")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else
                     "I was charged twice for my subscription this month."))
