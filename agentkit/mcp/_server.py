"""agentkit tools served as an MCP server (stdio or streamable HTTP), on the official SDK.

Each tool is listed with the schema a model would get (``tool.parameters``) and called
through ``Tool.invoke``, so an MCP client sees the same validation messages, timeouts and
error results an agent run does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pydantic_core

from agentkit._version import __version__
from agentkit.errors import ConfigurationError
from agentkit.mcp._client import import_sdk
from agentkit.tools import RunContext, Tool, tool

__all__ = ["create_server", "serve_http", "serve_stdio"]


def _as_tools(tools: Sequence[Tool[Any, Any] | Callable[..., Any]]) -> list[Tool[Any, Any]]:
    made = [t if isinstance(t, Tool) else tool(t) for t in tools]
    names: set[str] = set()
    for item in made:
        if item.external or item.needs_approval is not False:
            kind = "is external" if item.external else "needs approval"
            raise ConfigurationError(
                f"Tool {item.name!r} {kind}, which an MCP server cannot ask for: the MCP "
                "client would run it unchecked. Fix: serve it without "
                "needs_approval/external (MCP hosts ask their user before a call)."
            )
        if item.name in names:
            raise ConfigurationError(
                f"Two tools are named {item.name!r}. Fix: give one another name with "
                "@tool(name=...)."
            )
        names.add(item.name)
    if not made:
        raise ConfigurationError("No tools to serve. Fix: pass at least one tool.")
    return made


def create_server(
    tools: Sequence[Tool[Any, Any] | Callable[..., Any]], *, name: str = "agentkit"
) -> Any:
    """An MCP SDK server (``mcp.server.lowlevel.Server``) offering ``tools``.

    Plain functions are wrapped with :func:`~agentkit.tool`. Run it yourself with the
    SDK, or use :func:`serve_stdio` / :func:`serve_http`.

    Raises:
        ConfigurationError: No tools, two tools with one name, or a tool that needs
            approval or is external (an MCP server cannot pause for either).
    """
    served = _as_tools(tools)
    import_sdk()
    import mcp_types as types
    from mcp.server.lowlevel import Server

    by_name = {t.name: t for t in served}
    listing = types.ListToolsResult(
        tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.parameters)
            for t in served
        ]
    )

    async def list_tools(ctx: Any, params: Any) -> Any:
        return listing

    async def call_tool(ctx: Any, params: Any) -> Any:
        target = by_name.get(params.name)
        if target is None:
            known = ", ".join(by_name)
            text = f"Unknown tool {params.name!r}. Available tools: {known}."
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        context: RunContext[None] = RunContext(None, tool_name=target.name)
        result = await target.invoke(params.arguments or {}, context)
        structured = None
        if not result.is_error and result.value is not None:
            plain = pydantic_core.to_jsonable_python(result.value, serialize_unknown=True)
            structured = plain if isinstance(plain, dict) else None
        return types.CallToolResult(
            content=[types.TextContent(text=result.content)],
            structured_content=structured,
            is_error=result.is_error,
        )

    return Server(
        name, version=__version__, on_list_tools=list_tools, on_call_tool=call_tool
    )


async def serve_stdio(
    tools: Sequence[Tool[Any, Any] | Callable[..., Any]], *, name: str = "agentkit"
) -> None:
    """Serve ``tools`` over stdin/stdout until the client closes stdin.

    Nothing else may write to stdout meanwhile (it carries the protocol); logs go to
    stderr.
    """
    server = create_server(tools, name=name)
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(
    tools: Sequence[Tool[Any, Any] | Callable[..., Any]],
    *,
    port: int = 8000,
    host: str = "127.0.0.1",
    name: str = "agentkit",
) -> None:
    """Serve ``tools`` over streamable HTTP at ``http://HOST:PORT/mcp`` until cancelled.

    On a loopback ``host`` only requests naming a loopback Host and Origin are accepted
    (protection against DNS rebinding from a web page).
    """
    server = create_server(tools, name=name)
    import uvicorn

    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
