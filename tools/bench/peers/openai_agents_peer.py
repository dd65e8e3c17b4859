"""The OpenAI Agents SDK (``openai-agents``) on its chat-completions model.

Tracing is turned off: on by default it would try to upload traces to OpenAI, which a
benchmark against a local server cannot (and should not) do.
"""

from __future__ import annotations

from importlib.metadata import version

import openai
from _common import API_KEY, INSTRUCTIONS, MODEL, PROMPT, Runner, get_time, get_weather, main
from agents import Agent, OpenAIChatCompletionsModel, function_tool, set_tracing_disabled
from agents import Runner as AgentRunner


def make_runner(base_url: str, stream: bool) -> Runner:
    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY)
    agent = Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
        tools=[function_tool(get_weather), function_tool(get_time)],
    )

    async def run() -> str:
        result = await AgentRunner.run(agent, PROMPT)
        return str(result.final_output)

    async def run_streamed() -> str:
        result = AgentRunner.run_streamed(agent, PROMPT)
        async for _ in result.stream_events():
            pass
        return str(result.final_output)

    return run_streamed if stream else run


if __name__ == "__main__":
    main(make_runner, {"openai-agents": version("openai-agents"), "openai": version("openai")})
