"""MCPServer against a server written with the official MCP Python SDK (stdio and HTTP)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from _mcp import REPO, SDK_SERVER, alive, free_port, http_server, wait_dead

from agentkit import ConfigurationError, MCPError, ToolArgumentsError, ToolError, ToolTimeout
from agentkit.mcp import MCPServer

pytestmark = pytest.mark.anyio


def sdk_server(**options: object) -> MCPServer:
    return MCPServer.stdio(sys.executable, [str(SDK_SERVER)], **options)  # type: ignore[arg-type]


def by_name(server: MCPServer) -> dict[str, object]:
    return {t.name: t for t in server.tools()}


async def test_tools_have_the_servers_schemas_and_results_become_tool_results() -> None:
    async with sdk_server(prefix="py_") as server:
        tools = {t.name: t for t in server.tools()}
        assert {"py_add", "py_weather", "py_picture", "py_fail"} <= set(tools)
        add = tools["py_add"]
        assert add.description == "Add two integers."
        assert add.strict  # the server's schema allows strict mode
        assert add.parameters["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
        assert add.to_openai()["function"]["strict"] is True

        result = await add.invoke('{"a": 2, "b": 3}')
        assert (result.content, result.is_error) == ("5", False)

        weather = await tools["py_weather"].invoke({"city": "Paris"})
        assert weather.value == {"city": "Paris", "temp_c": 21}  # structured content
        assert json.loads(weather.content) == {"city": "Paris", "temp_c": 21}

        picture = await tools["py_picture"].invoke({})
        assert picture.content.splitlines() == ["a red pixel", "[image: image/png, 66 bytes]"]
        assert [block.type for block in picture.value.content] == ["text", "image"]

        failed = await tools["py_fail"].invoke({"reason": "x"})
        assert failed.is_error and "Error executing tool fail" in failed.content
        assert isinstance(failed.error, ToolError)

        # Arguments are checked against the server's schema before anything is sent.
        bad = await add.invoke('{"a": "two"}')
        assert bad.is_error and isinstance(bad.error, ToolArgumentsError)
        assert "a: Input should be of type integer" in bad.content
        assert "b: missing required field" in bad.content


async def test_allow_and_deny_filter_tools_and_no_cache_lists_every_time() -> None:
    options = {"allow": ["add*", "w*", "late"], "deny": ["add"], "cache_tools": False}
    async with sdk_server(**options) as server:
        assert [t.name for t in server.tools()] == ["weather", "add_tool"]
        await by_name(server)["add_tool"].invoke({})  # type: ignore[attr-defined]
        assert [t.name for t in await server.list_tools()] == ["weather", "add_tool", "late"]


async def test_a_tools_list_changed_notification_refreshes_the_listing() -> None:
    async with sdk_server() as server:
        assert "late" not in by_name(server)
        cached = await server.list_tools()
        assert [t.name for t in cached] == [t.name for t in server.tools()]
        added = await by_name(server)["add_tool"].invoke({})  # type: ignore[attr-defined]
        assert added.content == "added"
        with anyio.fail_after(5):
            while "late" not in by_name(server):
                await anyio.sleep(0.02)
        late = await by_name(server)["late"].invoke({})  # type: ignore[attr-defined]
        assert late.content == "late"


async def test_a_server_killed_mid_call_is_a_tool_error_then_the_next_call_reconnects() -> None:
    async with sdk_server() as server:
        tools = by_name(server)
        first_pid = int((await tools["pid"].invoke({})).content)  # type: ignore[attr-defined]

        async def kill_soon() -> None:
            await anyio.sleep(0.3)
            os.kill(first_pid, signal.SIGKILL)

        async with anyio.create_task_group() as group:
            group.start_soon(kill_soon)
            with anyio.fail_after(10):
                lost = await tools["slow"].invoke({"seconds": 30})  # type: ignore[attr-defined]
        assert lost.is_error and isinstance(lost.error, ToolError)
        assert "closed the connection during the call to 'slow'" in lost.content
        assert "The next call reconnects" in lost.content

        again = await tools["pid"].invoke({})  # type: ignore[attr-defined]
        assert not again.is_error and int(again.content) != first_pid


async def test_twenty_concurrent_calls_share_one_session_and_a_slow_call_times_out() -> None:
    async with sdk_server(call_timeout=2) as server:
        tools = by_name(server)
        pid = (await tools["pid"].invoke({})).content  # type: ignore[attr-defined]
        results: dict[int, str] = {}

        async def call(i: int) -> None:
            slow = await tools["slow"].invoke({"seconds": 0.5})  # type: ignore[attr-defined]
            added = await tools["add"].invoke({"a": i, "b": 1000})  # type: ignore[attr-defined]
            assert slow.content == "slept 0.5"
            results[i] = added.content

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(call, i)
        assert time.monotonic() - started < 5  # concurrent, not 20 x 0.5 s one after another
        assert results == {i: str(i + 1000) for i in range(20)}
        assert (await tools["pid"].invoke({})).content == pid  # type: ignore[attr-defined]

        server.call_timeout = 0.3
        started = time.monotonic()
        slow = await tools["slow"].invoke({"seconds": 5})  # type: ignore[attr-defined]
        assert time.monotonic() - started < 3
        assert slow.is_error and isinstance(slow.error, ToolTimeout)
        assert slow.content == "Tool 'slow' did not finish within 0.3 s and was cancelled."
        quick = await tools["add"].invoke({"a": 1, "b": 1})  # type: ignore[attr-defined]
        assert quick.content == "2"  # the session lives on


async def test_entered_in_one_task_and_closed_in_another_ends_the_process_group() -> None:
    server = sdk_server()
    # Enter in a child task that has finished before the close (a FastAPI lifespan, a
    # fixture): the connection must not belong to that task.
    async with anyio.create_task_group() as group:
        group.start_soon(server.__aenter__)
    tools = by_name(server)
    pid = int((await tools["pid"].invoke({})).content)  # type: ignore[attr-defined]
    sleeper = int((await tools["spawn_sleeper"].invoke({})).content)  # type: ignore[attr-defined]
    assert alive(pid) and alive(sleeper)

    # Another event loop (run_sync in a thread) cannot use this loop's connection.
    def from_another_loop() -> object:
        return asyncio.run(tools["pid"].invoke({}))  # type: ignore[attr-defined]

    elsewhere = await anyio.to_thread.run_sync(from_another_loop)
    assert elsewhere.is_error and "opened in another event loop" in elsewhere.content  # type: ignore[attr-defined]

    async with anyio.create_task_group() as group:
        group.start_soon(server.close)
    assert wait_dead(pid) and wait_dead(sleeper)  # the grandchild too


def test_a_crashed_parent_takes_the_server_and_its_children_down() -> None:
    script = (
        "import sys, anyio\n"
        "from agentkit.mcp import MCPServer\n"
        "async def main():\n"
        f"    async with MCPServer.stdio(sys.executable, [{str(SDK_SERVER)!r}]) as s:\n"
        "        tools = {t.name: t for t in s.tools()}\n"
        "        for name in ('pid', 'spawn_sleeper'):\n"
        "            print((await tools[name].invoke({})).content, flush=True)\n"
        "        await anyio.sleep(60)\n"
        "anyio.run(main)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert parent.stdout is not None
        server_pid, sleeper_pid = int(parent.stdout.readline()), int(parent.stdout.readline())
        assert alive(server_pid) and alive(sleeper_pid)
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait()
        assert wait_dead(server_pid) and wait_dead(sleeper_pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


async def test_over_streamable_http_with_headers() -> None:
    port = free_port()
    with http_server(sys.executable, str(SDK_SERVER), "--http", str(port), port=port) as url:
        secret = "Bearer s3cret-token"
        server = MCPServer.http(url, headers={"Authorization": secret}, prefix="web_")
        async with server:
            tools = {t.name: t for t in server.tools()}
            assert (await tools["web_add"].invoke({"a": 20, "b": 22})).content == "42"
            weather = await tools["web_weather"].invoke({"city": "Oslo"})
            assert weather.value == {"city": "Oslo", "temp_c": 21}
        assert secret not in repr(server) and "s3cret" not in server.label
        # Closed: the next use says how to open it again.
        with pytest.raises(ConfigurationError, match="async with server"):
            await server.list_tools()


async def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    silent = MCPServer.stdio(
        "sh", ["-c", f"echo $$ > {pid_file}; exec sleep 60"], connect_timeout=0.5
    )
    with pytest.raises(MCPError, match=r"did not answer the handshake within 0\.5 s"):
        async with silent:
            pass
    assert wait_dead(int(pid_file.read_text()))


async def test_a_server_that_cannot_start_is_a_clear_error() -> None:
    with pytest.raises(MCPError, match="Could not connect to MCP server 'no-such-mcp-server'"):
        async with MCPServer.stdio("no-such-mcp-server", connect_timeout=10):
            pass
    # Nothing listens there: the error names the server, never its credentials.
    unreachable = MCPServer.http(
        f"http://user:pa55word@127.0.0.1:{free_port()}/mcp?key=s3cret-query",
        headers={"Authorization": "Bearer s3cret-token"}, connect_timeout=10,
    )
    with pytest.raises(MCPError, match="Could not connect to MCP server") as failure:
        async with unreachable:
            pass
    shown = f"{failure.value} {failure.value.__cause__} {unreachable!r}"
    assert "s3cret" not in shown and "pa55word" not in shown
    with pytest.raises(ConfigurationError, match="has not listed its tools yet"):
        sdk_server().tools()
    with pytest.raises(ConfigurationError, match="prefix"):
        sdk_server(prefix="fs.")


def test_importing_agentkit_mcp_loads_nothing_of_the_sdk() -> None:
    code = (
        "import sys, agentkit, agentkit.mcp; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('mcp', 'mcp_types', 'uvicorn', 'starlette')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    assert out.strip() == "[]"
