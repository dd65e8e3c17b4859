"""An agent using the tools of an MCP server, started over stdio.

    python examples/mcp_tools.py                  # offline: a scripted stand-in model
    OPENAI_API_KEY=sk-... python examples/mcp_tools.py

examples/mcp_servers/units.py is a unit-conversion server written with the official MCP
Python SDK. ``MCPServer.stdio`` starts it as a child process (in its own process group,
ended with the ``async with`` block), lists its tools and gives them to the agent under
the prefix ``units_``. Needs the ``mcp`` extra: ``pip install 'agentkit[mcp]'``.

Offline, a ``FunctionModel`` plays the model: it asks for the known units and a
conversion in one turn, then one conversion the server refuses, then answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from agentkit import Agent, RunFinished, ToolCallStarted, ToolResultReceived
from agentkit.mcp import MCPServer
from agentkit.models import Model, ModelRequest, ModelResponse
from agentkit.testing import FunctionModel, tool_call_response

SERVER = Path(__file__).resolve().parent / "mcp_servers" / "units.py"
QUESTION = "How far is a marathon (42.195 km) in miles? And can you convert 3 kg to litres?"


def _stand_in(request: ModelRequest) -> ModelResponse | str:
    """Offline stand-in: list the units and convert, try a bad conversion, then answer."""
    results = [m for m in request.messages if m.role == "tool"]
    if not results:
        return tool_call_response(
            ("units_list_units", {}),
            ("units_convert", {"value": 42.195, "from_unit": "km", "to_unit": "mi"}),
        )
    if len(results) == 2:
        return tool_call_response(
            ("units_convert", {"value": 3, "from_unit": "kg", "to_unit": "l"})
        )
    miles = results[1].text.split(" = ")[1]
    return f"A marathon is {miles}. Kilograms cannot become litres: mass is not volume."


def _model() -> Model | str:
    if os.environ.get("OPENAI_API_KEY"):
        return os.environ.get("AGENTKIT_MODEL", "gpt-4o-mini")
    return FunctionModel(_stand_in, name="stand-in")


async def main() -> None:
    async with MCPServer.stdio(sys.executable, [str(SERVER)], prefix="units_") as units:
        for found in units.tools():
            print(f"tool {found.name}: {found.description.splitlines()[0]}")
        agent = Agent(
            name="units",
            instructions="Answer with the units tools; never convert in your head.",
            model=_model(),
            tools=units.tools(),
        )
        print(f"user> {QUESTION}")
        async for event in agent.stream(QUESTION):
            if isinstance(event, ToolCallStarted):
                print(f"  -> {event.call.name}({event.call.arguments})")
            elif isinstance(event, ToolResultReceived):
                mark = "!!" if event.result.is_error else "<-"
                print(f"  {mark} {' '.join(event.result.content.split())}")
            elif isinstance(event, RunFinished):
                print(f"assistant> {event.result.output}")


if __name__ == "__main__":
    anyio.run(main)
