"""A weather bot: one tool, a streamed answer.

    python examples/weather_bot.py                      # offline model when no OPENAI_API_KEY
    python examples/weather_bot.py "Weather in Oslo?"   # your own question
    OPENAI_API_KEY=sk-... python examples/weather_bot.py

Offline it runs the bundled SmolLM2-135M (``agentkit models pull`` fetches it once). That
small model rarely decides on its own to call a tool, so the first turn forces one with
``tool_choice="required"``; the loop falls back to "auto" once the tool has run, and the
model then answers from the tool's result.
"""

from __future__ import annotations

import asyncio
import os
import sys

from agentkit import Agent, ModelSettings, TextDelta, ToolCallStarted, ToolResultReceived, tool

OFFLINE = not os.environ.get("OPENAI_API_KEY")


@tool
def get_weather(city: str) -> dict[str, object]:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    # A real bot would call a weather API here; a fixed report keeps the example offline.
    return {"city": city, "temperature_c": 14, "conditions": "light rain"}


agent: Agent[str] = Agent(
    name="weather",
    instructions="You are a weather bot. Answer in one short sentence using the tool's data.",
    model="local" if OFFLINE else "gpt-4o-mini",
    tools=[get_weather],
    settings=ModelSettings(tool_choice="required") if OFFLINE else None,
)


async def main(prompt: str = "What's the weather in Paris?") -> str:
    """Ask ``prompt``, printing the tool call, its result and the answer as it streams."""
    print(f"you> {prompt}  [model: {agent.model.name}]")
    answer = ""
    async for event in agent.stream(prompt):
        if isinstance(event, ToolCallStarted):
            print(f"  -> {event.name}({event.arguments})")
        elif isinstance(event, ToolResultReceived):
            print(f"  <- {event.result.content}  ({event.duration * 1000:.0f} ms)")
            print("assistant> ", end="", flush=True)
        elif isinstance(event, TextDelta):
            answer += event.text
            print(event.text, end="", flush=True)
    print()
    return answer


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
