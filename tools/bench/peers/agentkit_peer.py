"""agentkit: ``Agent`` over ``OpenAIChatModel``, the documented way to use it."""

from __future__ import annotations

from importlib.metadata import version

from _common import API_KEY, INSTRUCTIONS, MODEL, PROMPT, Runner, get_time, get_weather, main

from agentkit import Agent, tool
from agentkit.models import OpenAIChatModel
from agentkit.run import RunFinished


def make_runner(base_url: str, stream: bool) -> Runner:
    agent = Agent(
        model=OpenAIChatModel(MODEL, base_url=base_url, api_key=API_KEY),
        instructions=INSTRUCTIONS,
        tools=[tool(get_weather), tool(get_time)],
    )

    async def run() -> str:
        return (await agent.run(PROMPT)).output

    async def run_streamed() -> str:
        output = ""
        async for event in agent.stream(PROMPT):
            if isinstance(event, RunFinished):
                output = event.result.output
        return output

    return run_streamed if stream else run


if __name__ == "__main__":
    main(make_runner, {"agentkit": version("agentkit"), "openai": version("openai")})
