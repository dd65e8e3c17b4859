"""The baseline: the loop a developer writes by hand on ``openai.AsyncOpenAI``.

It does what every framework must do and nothing more: send the history and the tool
schemas, run the requested tools concurrently, append their results, ask again.
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from typing import Any

import openai
from _common import (
    API_KEY,
    INSTRUCTIONS,
    MODEL,
    PROMPT,
    TIME_DOC,
    WEATHER_DOC,
    Runner,
    get_time,
    get_weather,
    main,
)

FUNCTIONS = {"get_weather": get_weather, "get_time": get_time}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER_DOC,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name."}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": TIME_DOC,
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "IANA name."}},
                "required": ["timezone"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
]


async def _call_tools(messages: list[Any], calls: list[tuple[str, str, str]]) -> None:
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}
                for id_, name, args in calls
            ],
        }
    )
    results = await asyncio.gather(
        *(FUNCTIONS[name](**json.loads(args)) for _, name, args in calls)
    )
    for (id_, _, _), result in zip(calls, results, strict=True):
        messages.append({"role": "tool", "tool_call_id": id_, "content": result})


def make_runner(base_url: str, stream: bool) -> Runner:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY)

    async def run() -> str:
        messages: list[Any] = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": PROMPT},
        ]
        while True:
            response = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS
            )
            message = response.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]
            await _call_tools(messages, calls)

    async def run_streamed() -> str:
        messages: list[Any] = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": PROMPT},
        ]
        while True:
            chunks = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS, stream=True
            )
            text: list[str] = []
            calls: dict[int, list[str]] = {}
            async for chunk in chunks:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    text.append(delta.content)
                for part in delta.tool_calls or ():
                    call = calls.setdefault(part.index, ["", "", ""])
                    if part.id:
                        call[0] = part.id
                    if part.function and part.function.name:
                        call[1] += part.function.name
                    if part.function and part.function.arguments:
                        call[2] += part.function.arguments
            if not calls:
                return "".join(text)
            await _call_tools(messages, [tuple(calls[i]) for i in sorted(calls)])  # type: ignore[misc]

    return run_streamed if stream else run


if __name__ == "__main__":
    main(make_runner, {"openai": version("openai")})
