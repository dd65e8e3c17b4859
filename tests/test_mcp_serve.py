"""`agentkit mcp serve`: agentkit tools as an MCP server, driven by the official SDK's
client over stdio and streamable HTTP."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from _mcp import REPO, free_port, http_server

pytestmark = pytest.mark.anyio

TARGET = "tests/mcp_servers/agentkit_tools.py:tools"


def served_tools() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests" / "mcp_servers"))
    try:
        import agentkit_tools
    finally:
        sys.path.pop(0)
    return {t.name: t for t in agentkit_tools.tools}


async def check_session(client: Any) -> None:
    """What any MCP client sees of the served tools."""
    import mcp_types as types

    listing = await client.list_tools()
    ours = served_tools()
    assert [t.name for t in listing.tools] == list(ours)
    for listed in listing.tools:  # the very schemas a model gets
        assert listed.input_schema == ours[listed.name].parameters
        assert listed.description == ours[listed.name].description

    added = await client.call_tool("add", {"a": 40})
    assert (added.is_error, added.content[0].text) == (False, "42")
    forecast = await client.call_tool("forecast", {"city": "Oslo", "unit": None})
    assert forecast.structured_content == {"city": "Oslo", "temperature_c": 18.5}
    assert forecast.content[0].text == '{"city":"Oslo","temperature_c":18.5}'
    context = await client.call_tool("who_calls", {})
    assert context.content[0].text == "called as who_calls"

    broken = await client.call_tool("broken", {})
    assert broken.is_error
    assert broken.content[0].text == "Tool 'broken' raised RuntimeError: the disk is on fire"
    bad = await client.call_tool("add", {"a": "forty"})
    assert bad.is_error and "Invalid arguments for tool 'add'" in bad.content[0].text
    unknown = await client.call_tool("nope", {})
    assert unknown.is_error
    assert isinstance(unknown.content[0], types.TextContent)
    assert (
        unknown.content[0].text
    ) == "Unknown tool 'nope'. Available tools: add, forecast, who_calls, broken."


async def test_served_over_stdio_to_the_sdk_client() -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = StdioServerParameters(
        command=sys.executable, args=["-m", "agentkit", "mcp", "serve", TARGET],
        cwd=str(REPO), env={"PYTHONPATH": str(REPO)},
    )
    async with Client(stdio_client(command)) as client:
        await check_session(client)


async def test_served_over_streamable_http_at_slash_mcp() -> None:
    from mcp import Client

    port = free_port()
    command = [sys.executable, "-m", "agentkit", "mcp", "serve", TARGET, "--http", str(port)]
    with http_server(*command, port=port) as url:
        assert url.endswith(f":{port}/mcp")
        async with Client(url) as client:
            await check_session(client)


def test_a_tool_that_needs_approval_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.cli import main

    code = main(["mcp", "serve", f"{REPO}/tests/mcp_servers/agentkit_tools.py:delete_everything"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Tool 'delete_everything' needs approval" in err
    assert out == ""
