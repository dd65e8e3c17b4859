"""MCPServer against the MCP reference server, @modelcontextprotocol/server-everything
(Node.js, pinned in tests/npm and installed by `make mcp-servers`)."""

from __future__ import annotations

import json

import pytest
from _mcp import everything_args

from agentkit import Agent, ToolError
from agentkit.mcp import MCPServer
from agentkit.models import OpenAIChatModel
from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio


def everything(**options: object) -> MCPServer:
    return MCPServer.stdio("node", everything_args(), **options)  # type: ignore[arg-type]


async def test_reference_server_tools_and_their_results() -> None:
    async with everything() as server:
        tools = {t.name: t for t in server.tools()}
        assert {"echo", "get-sum", "get-tiny-image", "get-structured-content"} <= set(tools)
        echo = tools["echo"]
        assert echo.description
        assert echo.parameters["properties"]["message"]["type"] == "string"
        assert echo.parameters["required"] == ["message"]

        assert (await echo.invoke({"message": "hi"})).content == "Echo: hi"
        total = await tools["get-sum"].invoke({"a": 2, "b": 3})
        assert not total.is_error and "5" in total.content

        image = await tools["get-tiny-image"].invoke({})
        assert "[image: image/png," in image.content
        blocks = [block.type for block in image.value.content]
        assert "image" in blocks

        weather = await tools["get-structured-content"].invoke({"location": "Chicago"})
        assert set(weather.value) == {"temperature", "conditions", "humidity"}

        # The server's own error (a URL scheme it refuses) comes back as an error result.
        refused = await tools["gzip-file-as-resource"].invoke(
            {"name": "x.gz", "data": "file:///etc/hostname"}
        )
        assert refused.is_error and isinstance(refused.error, ToolError)
        assert "Unsupported URL protocol" in refused.content


async def test_an_agent_run_calls_the_reference_server_tools() -> None:
    script = [
        tool_call_reply(("ev_echo", {"message": "hello"}), ("ev_get-sum", {"a": 19, "b": 23})),
        tool_call_reply(("ev_get-tiny-image", {})),
        text_reply("Echoed, summed and looked."),
    ]
    async with everything(prefix="ev_", allow=["echo", "get-sum", "get-tiny-image"]) as server:
        with FakeOpenAIServer(script) as fake:
            model = OpenAIChatModel("gpt-4o-mini", base_url=fake.base_url, api_key=fake.api_key)
            agent = Agent(model=model, tools=server.tools())
            result = await agent.run("Echo hello, add 19 and 23, show the image.")
            first_request = fake.requests[0].body

    assert result.output == "Echoed, summed and looked."
    results = {m.name: m.content for m in result.messages if m.role == "tool"}
    assert results["ev_echo"] == "Echo: hello"
    assert "42" in str(results["ev_get-sum"])
    assert "[image: image/png," in str(results["ev_get-tiny-image"])
    sent = {t["function"]["name"]: t["function"] for t in first_request["tools"]}
    assert set(sent) == {"ev_echo", "ev_get-sum", "ev_get-tiny-image"}
    assert json.dumps(sent["ev_echo"]["parameters"]).count("message") >= 1
