"""An MCP server written with the official Python SDK (MCPServer), for tests.

Run: python sdk_server.py            (stdio)
     python sdk_server.py --http PORT   (streamable HTTP at /mcp)
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ImageContent, TextContent

server = MCPServer("sdk-test-server")
# A 1x1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def weather(city: str) -> dict[str, object]:
    """Structured weather for a city."""
    return {"city": city, "temp_c": 21}


@server.tool()
def picture() -> list[TextContent | ImageContent]:
    """A caption and an image."""
    return [TextContent(text="a red pixel"), ImageContent(data=PIXEL, mime_type="image/png")]


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"failed on purpose: {reason}")


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def spawn_sleeper() -> int:
    """Start a grandchild process that would outlive a careless parent; its pid."""
    return subprocess.Popen(["sleep", "300"]).pid


@server.tool()
def die() -> str:
    """Exit at once, mid-call."""
    os._exit(3)


@server.tool()
async def add_tool(ctx: Context) -> str:
    """Add a tool named 'late' and tell the client its tool list changed."""

    def late() -> str:
        """A tool added after the first listing."""
        return "late"

    server.add_tool(late)
    await ctx.notify_tools_changed()
    return "added"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        anyio.run(lambda: server.run_streamable_http_async(port=int(sys.argv[2])))
    else:
        server.run()
