"""Several tool calls in one turn, run concurrently, with their timings.

    python examples/parallel_tools.py                  # offline: a scripted stand-in model
    OPENAI_API_KEY=sk-... python examples/parallel_tools.py

Each tool takes about half a second. The model asks for four calls in one response and the
loop runs them at the same time (sync tools in worker threads, async tools on the event
loop), so the whole turn takes about 0.5 s instead of 2 s. Results still go back to the
model in the order of the calls.

Offline, a ``FunctionModel`` plays the model: it asks for the four calls, then summarises
what came back. The bundled offline model cannot make several calls in one reply.
"""

from __future__ import annotations

import json
import os
import time

import anyio

from agentkit import (
    Agent,
    ModelSettings,
    RunFinished,
    ToolCallStarted,
    ToolResultReceived,
    tool,
)
from agentkit.models import Model, ModelRequest, ModelResponse
from agentkit.testing import FunctionModel, tool_call_response

CITIES = ("Paris", "Tokyo", "Lima")


@tool
async def get_weather(city: str) -> dict[str, object]:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    await anyio.sleep(0.5)  # stands in for a slow weather API
    return {"city": city, "temperature_c": 10 + len(city), "conditions": "clear"}


@tool
def get_local_time(city: str) -> str:
    """Get the local time in a city as HH:MM.

    Args:
        city: City name.
    """
    time.sleep(0.5)  # a blocking call: the loop runs sync tools in a worker thread
    offsets = {"Paris": 1, "Tokyo": 9, "Lima": -5}
    hour = (12 + offsets.get(city, 0)) % 24
    return f"{hour:02d}:00"


def _stand_in(request: ModelRequest) -> ModelResponse | str:
    """Offline stand-in: call every tool at once, then summarise the results."""
    last = request.messages[-1]
    if last.role == "user":
        return tool_call_response(
            *[("get_weather", {"city": c}) for c in CITIES], ("get_local_time", {"city": "Tokyo"})
        )
    results = [m for m in request.messages if m.role == "tool"]
    lines = []
    for message in results:
        value = json.loads(message.text) if message.text.startswith("{") else message.text
        if isinstance(value, dict):
            lines.append(f"{value['city']}: {value['temperature_c']}°C, {value['conditions']}")
        else:
            lines.append(f"Tokyo local time: {value}")
    return "; ".join(lines) + "."


def _model() -> Model | str:
    if os.environ.get("OPENAI_API_KEY"):
        return "gpt-4o-mini"
    return FunctionModel(_stand_in, name="offline-stand-in")


agent: Agent[str] = Agent(
    name="travel",
    instructions="Answer briefly. Call all the tools you need at once, in one response.",
    model=_model(),
    tools=[get_weather, get_local_time],
    settings=ModelSettings(parallel_tool_calls=True),
)


async def main(
    prompt: str = "What's the weather in Paris, Tokyo and Lima, and what time is it in Tokyo?",
) -> str:
    """Run ``prompt`` and print each tool call's start, end and duration."""
    print(f"you> {prompt}  [model: {agent.model.name}]")
    started = time.perf_counter()
    durations: list[float] = []
    output = ""
    async for event in agent.stream(prompt):
        now = time.perf_counter() - started
        if isinstance(event, ToolCallStarted):
            print(f"  {now:5.2f}s -> {event.name}({event.arguments})")
        elif isinstance(event, ToolResultReceived):
            durations.append(event.duration)
            print(f"  {now:5.2f}s <- {event.call.name}: {event.result.content}"
                  f"  ({event.duration:.2f} s)")
        elif isinstance(event, RunFinished):
            output = str(event.result.output)
    if durations:
        print(f"{len(durations)} tool calls: {sum(durations):.2f} s of work, done together in "
              f"{max(durations):.2f} s")
    print(f"assistant> {output}")
    return output


if __name__ == "__main__":
    anyio.run(main)
