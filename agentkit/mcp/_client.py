"""MCPServer: the tools of a Model Context Protocol server as agentkit tools.

One internal task owns each connection (the SDK's transports and sessions are anyio task
groups that must be exited by the task that entered them). Callers only talk to the
session's streams, so an ``MCPServer`` entered in one task can be used and closed from any
other (a FastAPI lifespan, a test fixture, a worker pool). A connection that fails is
marked dead; the call that saw it gets an error tool result and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from agentkit._secrets import redact
from agentkit.errors import ConfigurationError, MCPError, ToolArgumentsError, ToolError, ToolTimeout
from agentkit.mcp._results import result_text
from agentkit.tools import RunContext, Tool, ToolResult

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["MCPServer"]

logger = logging.getLogger("agentkit")

_TransportFactory = Callable[[], AbstractAsyncContextManager[Any]]
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_PAGES = 100  # a server whose cursor never ends cannot hang a listing
_GUARD = Path(__file__).with_name("_guard.py")


def import_sdk() -> Any:
    """``import mcp`` (about a second), on first use only, naming the extra when missing."""
    try:
        import mcp
    except ImportError as exc:
        raise ConfigurationError(
            f"agentkit.mcp needs the official MCP SDK, which is not installed ({exc}). "
            "Fix: pip install 'agentkit[mcp]'."
        ) from None
    return mcp


class _Connection:
    """One live session with the server, owned by its own task."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.client: Client | None = None
        self.alive = False
        self.error: BaseException | None = None
        self.ready = anyio.Event()
        self.stop = anyio.Event()
        self.done = anyio.Event()
        self.group: anyio.abc.TaskGroup | None = None
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, timeout: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "MCPServer needs the asyncio event loop (it owns each connection in an "
                "asyncio task). Fix: run it under asyncio (asyncio.run or anyio's default)."
            ) from None
        self.loop = loop
        # Not a child of the caller's task group: entering here and closing from another
        # task must not cross cancel scopes.
        self.task = loop.create_task(self._own(), name=f"agentkit-mcp {self.server.label}")
        try:
            with anyio.fail_after(timeout):
                await self.ready.wait()
        except TimeoutError:
            await self.close()
            raise MCPError(
                f"MCP server {self.server.label} did not answer the handshake within "
                f"{timeout:g} s. Fix: check that it starts on its own (run the command in a "
                "terminal), or raise connect_timeout=."
            ) from None
        except BaseException:
            await self.close()
            raise
        if self.error is not None:
            why = self.server._describe(self.error)
            failure = MCPError(
                f"Could not connect to MCP server {self.server.label}: {why}. Fix: check the "
                "command or URL, and the server's own error output above."
            )
            # Chained only when clean: a printed traceback shows the cause's text.
            raise failure from (self.error if why == _describe(self.error) else None)

    async def _own(self) -> None:
        sdk = import_sdk()
        try:
            client = sdk.Client(
                self.server._transport(), message_handler=self._on_message, cache=None
            )
            async with client, anyio.create_task_group() as group:
                self.client, self.group, self.alive = client, group, True
                if _modern(client) and _lists_change(client):
                    group.start_soon(self._listen, client)
                self.ready.set()
                await self.stop.wait()
                group.cancel_scope.cancel()
        except Exception as exc:
            if not self.ready.is_set():
                self.error = exc
            else:  # a dead server's session fails on the way out: expected, not news
                logger.debug("MCP server %s: connection ended: %s", self.server.label, exc)
        finally:
            self.alive = False
            self.client = self.group = None
            self.ready.set()
            self.done.set()

    async def _on_message(self, message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self.server._tools_changed(self)

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as events:
                async for _ in events:
                    self.server._tools_changed(self)
        except Exception as exc:  # the server refused or dropped it: no change events
            logger.debug("MCP server %s: tools/list_changed stream ended: %s",
                         self.server.label, exc)

    def mark_dead(self) -> None:
        """The server is gone: let the owner task clean up, without waiting for it."""
        self.alive = False
        self.stop.set()

    async def close(self) -> None:
        self.stop.set()
        if self.task is None:
            return
        if not self.ready.is_set():  # still connecting: nothing waits for `stop` yet
            self.task.cancel()
        with anyio.CancelScope(shield=True):
            await self.done.wait()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _modern(client: Any) -> bool:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


def _lists_change(client: Any) -> bool:
    tools = client.server_capabilities.tools
    return bool(tools is not None and tools.list_changed)


def _describe(exc: BaseException) -> str:
    # An exception group of one (anyio task groups wrap what fails inside them).
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tool_name(prefix: str, remote: str) -> str:
    return _INVALID_NAME_CHARS.sub("_", prefix + remote)[:64]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class MCPServer:
    """The tools of one MCP server, usable by an :class:`~agentkit.Agent`.

    Create it with :meth:`stdio` (a local command) or :meth:`http` (streamable HTTP) and
    enter it: ``async with MCPServer.stdio("npx", ["-y", "pkg"]) as fs:``. Entering
    connects and lists the tools; :meth:`tools` then gives them as agentkit tools.

    Attributes:
        label: How the server is named in messages (the command, or the URL without its
            query).
        prefix: Prepended to every tool name (tell two servers' tools apart).
        call_timeout: Seconds after which a call is cancelled (None: no limit).
        cache_tools: Keep the listing until the server says it changed
            (``notifications/tools/list_changed``); False lists again on every
            :meth:`list_tools`.
    """

    def __init__(
        self,
        transport: _TransportFactory,
        *,
        label: str,
        prefix: str = "",
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        call_timeout: float | None = None,
        cache_tools: bool = True,
        connect_timeout: float = 30.0,
        secrets: Iterable[str] = (),
    ) -> None:
        """Most code uses :meth:`stdio` or :meth:`http`; ``transport`` is a callable
        returning a fresh MCP SDK transport (an async context manager of streams); ``secrets``
        (header and environment values) are masked in every message."""
        if call_timeout is not None and call_timeout <= 0:
            raise ConfigurationError(f"call_timeout must be > 0 seconds, got {call_timeout!r}.")
        if prefix and not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
            raise ConfigurationError(
                f"prefix {prefix!r} has characters a tool name cannot have. Fix: use letters, "
                "digits, '_' or '-', e.g. prefix='fs_'."
            )
        self._transport = transport
        self._secrets = tuple(secrets)
        self.label = label
        self.prefix = prefix
        self.call_timeout = call_timeout
        self.cache_tools = cache_tools
        self.connect_timeout = connect_timeout
        self._allow = None if allow is None else tuple([allow] if isinstance(allow, str) else allow)
        self._deny = tuple([deny] if isinstance(deny, str) else deny or ())
        self._connection: _Connection | None = None
        self._lock: anyio.Lock | None = None
        self._entered = False
        self._listing: list[Any] | None = None  # the server's tool definitions, filtered
        self._tools: dict[str, _MCPTool] = {}  # by remote name, rebuilt when a listing changes
        self._stale = True
        self._refreshing = False

    # --- construction -----------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        prefix: str = "",
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        call_timeout: float | None = None,
        cache_tools: bool = True,
        connect_timeout: float = 30.0,
    ) -> MCPServer:
        """A server run as a child process, speaking MCP on its stdin and stdout.

        The child gets a minimal environment (``PATH``, ``HOME``, ``USER``, ``SHELL``,
        ``TERM``, ``LOGNAME``) plus ``env``; its stderr goes to this process's stderr.
        It runs in its own process group, killed as a whole when the server is closed,
        exits, or this process dies (even by SIGKILL).

        Args:
            command: The program, e.g. ``"npx"`` or ``sys.executable``.
            args: Its arguments.
            env: Extra environment variables (e.g. an API key the server needs).
            cwd: Its working directory.
            prefix: Prepended to every tool name, e.g. ``"fs_"``.
            allow: Only these tools (names or glob patterns, before the prefix).
            deny: Never these tools (names or glob patterns, before the prefix).
            call_timeout: Seconds after which a call is cancelled and reported.
            cache_tools: Keep the listing until the server says it changed.
            connect_timeout: Seconds to wait for the server's handshake.
        """
        sdk = import_sdk()
        argv = [command, *args]
        if sys.platform != "win32":
            argv = [sys.executable, "-I", "-S", str(_GUARD), str(os.getpid()), *argv]
        parameters = sdk.StdioServerParameters(
            command=argv[0], args=argv[1:], env=dict(env or {}), cwd=cwd
        )
        label = repr(" ".join([command, *args])[:120])

        def transport() -> AbstractAsyncContextManager[Any]:
            return sdk.stdio_client(parameters)  # type: ignore[no-any-return]

        return cls(
            transport, label=label, prefix=prefix, allow=allow, deny=deny,
            call_timeout=call_timeout, cache_tools=cache_tools, connect_timeout=connect_timeout,
            secrets=(env or {}).values(),
        )  # fmt: skip

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        prefix: str = "",
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        call_timeout: float | None = None,
        cache_tools: bool = True,
        connect_timeout: float = 30.0,
    ) -> MCPServer:
        """A server reached over MCP's streamable HTTP transport at ``url``.

        Args:
            url: The endpoint, e.g. ``"http://127.0.0.1:8000/mcp"``.
            headers: Sent with every request (e.g. ``{"Authorization": "Bearer ..."}``);
                never logged or shown in messages.
            prefix: Prepended to every tool name.
            allow: Only these tools (names or glob patterns, before the prefix).
            deny: Never these tools (names or glob patterns, before the prefix).
            call_timeout: Seconds after which a call is cancelled and reported.
            cache_tools: Keep the listing until the server says it changed.
            connect_timeout: Seconds to wait for the server's handshake.
        """
        import_sdk()
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        fixed_headers = dict(headers or {})
        shown = url.split("?", 1)[0]
        if "@" in shown.split("//", 1)[-1].split("/", 1)[0]:  # user:password@host
            scheme, _, rest = shown.partition("//")
            shown = f"{scheme}//{rest.split('@', 1)[1]}"

        def transport() -> AbstractAsyncContextManager[Any]:
            client = create_mcp_http_client(headers=fixed_headers)
            return _HTTPTransport(streamable_http_client(url, http_client=client), client)

        return cls(
            transport, label=repr(shown), prefix=prefix, allow=allow, deny=deny,
            call_timeout=call_timeout, cache_tools=cache_tools, connect_timeout=connect_timeout,
            secrets=[*fixed_headers.values(), *_url_secrets(url)],
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"MCPServer({self.label}, prefix={self.prefix!r})"

    # --- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> MCPServer:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect and list the tools (what ``async with`` does on entry).

        Raises:
            MCPError: The server could not be started or reached, or did not answer.
        """
        self._entered = True
        self._stale = True  # a new connection lists again
        await self._session()
        try:
            await self.list_tools()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection (a stdio server and its process group end). Safe to call
        from any task, and more than once; a later call reconnects."""
        connection, self._connection = self._connection, None
        self._entered = False
        if connection is not None:
            await connection.close()

    async def _session(self) -> _Connection:
        """The live connection, (re)connecting when there is none."""
        connection = self._connection
        if connection is not None and connection.alive:
            return connection
        if not self._entered:
            raise ConfigurationError(
                f"MCP server {self.label} is not open. Fix: use it inside "
                "`async with server:` (or await server.connect() first)."
            )
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            connection = self._connection
            if connection is not None and connection.alive:
                return connection
            if connection is not None:
                await connection.close()
            connection = _Connection(self)
            await connection.start(self.connect_timeout)
            self._connection = connection
            return connection

    # --- tools ------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool[..., Any]]:
        """The server's tools as agentkit tools, after ``allow``/``deny``, named with the
        ``prefix``. Asks the server unless a cached listing is still current.

        Raises:
            MCPError: The server could not be reached or answered with an error.
        """
        if self._listing is None or self._stale or not self.cache_tools or not self._entered:
            await self._fetch()
        return self.tools()

    def tools(self) -> list[Tool[..., Any]]:
        """The tools of the latest listing (made on entry, refreshed when the server
        reports a change). Pass them to ``Agent(tools=...)``.

        Raises:
            ConfigurationError: The server was not entered yet.
        """
        if self._listing is None:
            raise ConfigurationError(
                f"MCP server {self.label} has not listed its tools yet. Fix: call tools() "
                "inside `async with server:` (entering lists them)."
            )
        return [self._tools[t.name] for t in self._listing]

    async def _fetch(self) -> None:
        connection = await self._session()
        client = connection.client
        if client is None:
            raise MCPError(f"MCP server {self.label} closed the connection. Retry to reconnect.")
        self._stale = False  # a change reported during the fetch sets it again
        definitions: list[Any] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                definitions += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
        except Exception as exc:
            self._stale = True
            if _connection_lost(exc):
                connection.mark_dead()
            raise MCPError(
                f"MCP server {self.label} failed to list its tools: {self._describe(exc)}."
            ) from exc
        self._install(definitions)

    def _install(self, definitions: list[Any]) -> None:
        kept = [
            d for d in definitions
            if (self._allow is None or _matches(d.name, self._allow))
            and not _matches(d.name, self._deny)
        ]  # fmt: skip
        tools: dict[str, _MCPTool] = {}
        seen: dict[str, str] = {}
        for definition in kept:
            name = _tool_name(self.prefix, definition.name)
            if name in seen:
                raise MCPError(
                    f"MCP server {self.label} has tools {seen[name]!r} and "
                    f"{definition.name!r}, which both become {name!r}. Fix: deny= one of them."
                )
            seen[name] = definition.name
            old = self._tools.get(definition.name)
            same = old is not None and old.source == definition
            tools[definition.name] = old if same and old is not None else _MCPTool(
                self, name, definition
            )
        self._tools = tools
        self._listing = kept

    def _tools_changed(self, connection: _Connection) -> None:
        """``notifications/tools/list_changed``: list again, in the connection's task."""
        self._stale = True
        if connection.group is None or self._refreshing or not self.cache_tools:
            return
        self._refreshing = True

        async def refresh() -> None:
            try:
                await self._fetch()
            except Exception as exc:  # the next list_tools() tries again
                logger.debug("MCP server %s: refreshing tools failed: %s", self.label, exc)
            finally:
                self._refreshing = False

        connection.group.start_soon(refresh)

    async def call(
        self, tool: _MCPTool, arguments: dict[str, Any], context: RunContext[Any] | None
    ) -> ToolResult:
        """Call ``tool`` on the server; every failure comes back as an error result."""
        current = self._connection
        if current is not None and current.loop is not _running_loop():
            message = (
                f"MCP server {self.label} was opened in another event loop, and its tools "
                "can only be called from that loop. Fix: call them (await agent.run(...)) "
                "inside the `async with server:` block, not through run_sync or a thread."
            )
            return _error_result(tool.name, message, None)
        try:
            connection = await self._session()
        except (MCPError, ConfigurationError) as exc:
            return _error_result(tool.name, str(exc), exc)
        client = connection.client
        if client is None:
            return self._lost(tool, connection, None)
        try:
            with anyio.move_on_after(self.call_timeout) as scope:
                result = await client.call_tool(tool.source.name, arguments)
        except Exception as exc:
            if _connection_lost(exc):
                return self._lost(tool, connection, exc)
            why = self._describe(exc)
            message = f"MCP server {self.label} refused the call to '{tool.name}': {why}"
            return _error_result(tool.name, message, exc)
        except BaseException:
            if context is not None:
                context.cancel_event.set()
            raise
        if scope.cancelled_caught:
            if context is not None:
                context.cancel_event.set()
            timeout = self.call_timeout or 0.0
            text = f"Tool '{tool.name}' did not finish within {timeout:g} s and was cancelled."
            error = ToolTimeout(text, tool_name=tool.name, timeout=timeout)
            return ToolResult(text, is_error=True, error=error)
        text = result_text(result)
        if result.is_error:
            text = redact(text, self._secrets) or f"Tool '{tool.name}' failed."
            return _error_result(tool.name, text, None, result)
        value = result.structured_content if result.structured_content is not None else result
        return ToolResult(text, value=value)

    def _describe(self, exc: BaseException) -> str:
        """One line about ``exc``, without the server's secrets (headers, environment)."""
        return redact(_describe(exc), self._secrets)

    def _lost(self, tool: _MCPTool, connection: _Connection, exc: Exception | None) -> ToolResult:
        connection.mark_dead()
        why = f" ({self._describe(exc)})" if exc is not None else ""
        message = (
            f"MCP server {self.label} closed the connection during the call to "
            f"'{tool.name}'{why}; it may have crashed. The next call reconnects."
        )
        return _error_result(tool.name, message, exc)


def _error_result(
    name: str, message: str, cause: BaseException | None, value: Any = None
) -> ToolResult:
    error = ToolError(message, tool_name=name, exception=cause or MCPError(message))
    return ToolResult(message, is_error=True, value=value, error=error)


def _connection_lost(exc: BaseException) -> bool:
    from mcp import MCPError as SDKError
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, SDKError):
        return exc.code == CONNECTION_CLOSED
    closed = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError)
    return isinstance(exc, closed) or type(exc).__module__.startswith(("httpx", "httpcore"))


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL that may carry credentials: its query and userinfo password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return [p for p in (parts.query, parts.password or "") if p]


class _HTTPTransport:
    """The streamable HTTP transport, closing the HTTP client it was given."""

    def __init__(self, inner: AbstractAsyncContextManager[Any], client: Any) -> None:
        self._inner, self._client = inner, client

    async def __aenter__(self) -> Any:
        await self._client.__aenter__()
        try:
            return await self._inner.__aenter__()
        except BaseException:
            await self._client.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._inner.__aexit__(*exc_info)
        finally:
            await self._client.__aexit__(None, None, None)


class _MCPTool(Tool[..., Any]):
    """One tool of an MCP server: the server's schema, calls sent to the server."""

    def __init__(self, server: MCPServer, name: str, definition: Any) -> None:
        self.server = server
        self.source = definition
        parameters = dict(definition.input_schema)
        parameters.pop("$schema", None)  # the dialect tag means nothing to a model
        parameters.setdefault("type", "object")
        parameters.setdefault("properties", {})

        async def call(**arguments: Any) -> Any:
            result = await server.call(self, arguments, None)
            if result.is_error:
                assert result.error is not None
                raise result.error
            return result.value

        call.__name__ = name
        description = definition.description or definition.title or ""
        super().__init__(name, description, parameters, call, timeout=server.call_timeout)

    async def invoke(
        self, arguments: str | Mapping[str, Any] | None, context: RunContext[Any] | None = None
    ) -> ToolResult:
        """Check ``arguments`` against the server's schema and call the tool on the
        server; failures (bad arguments, a tool error, a dead server, the call timeout)
        come back as error results."""
        try:
            _, kwargs = self._bind_arguments(arguments)
        except ToolArgumentsError as bad:
            return ToolResult(content=str(bad), is_error=True, error=bad)
        return await self.server.call(self, kwargs, context)
