"""Model Context Protocol: tools from any MCP server, and agentkit tools served over MCP.

``MCPServer.stdio(...)`` / ``MCPServer.http(...)`` connect to a server and give its tools
as agentkit tools; :func:`serve_stdio` / :func:`serve_http` (and ``agentkit mcp serve``)
serve agentkit tools to any MCP client. Needs the ``mcp`` extra
(``pip install 'agentkit[mcp]'``); the SDK is imported on first use, so importing this
module is cheap.
"""

from agentkit.mcp._client import MCPServer
from agentkit.mcp._server import create_server, serve_http, serve_stdio

__all__ = ["MCPServer", "create_server", "serve_http", "serve_stdio"]
