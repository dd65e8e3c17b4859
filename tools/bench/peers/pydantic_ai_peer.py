"""pydantic-ai on its OpenAI chat-completions model.

The streamed mode uses ``run_stream_events``, which streams every model response and runs
the agent to completion (``run_stream`` would stop at the first text).
"""

from __future__ import annotations

from importlib.metadata import version

from _common import API_KEY, INSTRUCTIONS, MODEL, PROMPT, Runner, get_time, get_weather, main
from pydantic_ai import Agent, AgentRunResultEvent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


def make_runner(base_url: str, stream: bool) -> Runner:
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key=API_KEY))
    agent = Agent(model, instructions=INSTRUCTIONS, tools=[get_weather, get_time])

    async def run() -> str:
        return (await agent.run(PROMPT)).output

    async def run_streamed() -> str:
        output = ""
        async with agent.run_stream_events(PROMPT) as events:
            async for event in events:
                if isinstance(event, AgentRunResultEvent):
                    output = event.result.output
        return output

    return run_streamed if stream else run


if __name__ == "__main__":
    main(
        make_runner, {"pydantic-ai-slim": version("pydantic-ai-slim"), "openai": version("openai")}
    )
