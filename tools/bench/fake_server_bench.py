"""How much does FakeOpenAIServer itself cost per request?

Run: ``.venv/bin/python tools/bench/fake_server_bench.py [--requests 20000]``

1. A blocking keep-alive socket client in the same process sends non-streamed and streamed
   chat requests (the parallel-tools workload) one after another: requests/s, µs per
   request end to end, and the server thread's own CPU time per request (Linux
   ``/proc/self/task/<tid>/stat``), which is what the server adds to a benchmark.
2. The real ``openai.AsyncOpenAI`` client, sequentially: the client's cost for contrast.
3. 1,000 concurrent runs (user → 2 parallel tool calls → tool results → answer) through
   one ``AsyncOpenAI`` client: all must complete; runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from typing import Any

from agentkit.testing.fake_openai import FakeOpenAIServer, parallel_tools_handler

USER = [{"role": "user", "content": "What is the weather and time in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU time of one thread of this process (Linux only)."""
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def server_thread_id(server: FakeOpenAIServer) -> int | None:
    thread = server._http._thread  # benchmark introspection only
    return thread.native_id if thread is not None else None


def raw_client(server: FakeOpenAIServer, n: int, stream: bool) -> dict[str, float]:
    body = json.dumps({"model": "gpt-4o-mini", "messages": USER, "tools": TOOLS, "stream": stream})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n{body}"
    ).encode()
    tid = server_thread_id(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")

        def once() -> None:
            sock.sendall(request)
            length = None
            chunked = False
            while (line := reader.readline()) != b"\r\n":
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(lower.split(b":")[1])
                elif lower.startswith(b"transfer-encoding:"):
                    chunked = True
            if not chunked:
                assert length is not None
                reader.read(length)
                return
            while True:
                size = int(reader.readline(), 16)
                reader.read(size + 2)
                if size == 0:
                    return

        for _ in range(min(1000, n)):  # warm up
            once()
        cpu0 = thread_cpu_seconds(tid) if tid else 0.0
        t0 = time.perf_counter()
        for _ in range(n):
            once()
        elapsed = time.perf_counter() - t0
        cpu = (thread_cpu_seconds(tid) if tid else 0.0) - cpu0
    return {
        "requests/s": n / elapsed,
        "µs/request end to end": elapsed / n * 1e6,
        "µs/request server CPU": cpu / n * 1e6,
    }


async def openai_sequential(server: FakeOpenAIServer, n: int) -> dict[str, float]:
    import openai

    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.api_key, max_retries=0
    ) as client:
        for _ in range(50):
            await client.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
        tid = server_thread_id(server)
        cpu0 = thread_cpu_seconds(tid) if tid else 0.0
        t0 = time.perf_counter()
        for _ in range(n):
            await client.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        cpu = (thread_cpu_seconds(tid) if tid else 0.0) - cpu0
    return {
        "requests/s": n / elapsed,
        "µs/request end to end": elapsed / n * 1e6,
        "µs/request server CPU": cpu / n * 1e6,
    }


async def concurrent_runs(server: FakeOpenAIServer, runs: int, pool: int) -> dict[str, float]:
    import httpx2 as httpx
    import openai

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key=server.api_key,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    ) as client:

        async def run_once() -> str | None:
            messages: list[Any] = list(USER)
            first = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                tools=TOOLS,  # type: ignore[arg-type]
            )
            message = first.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls or []:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})
            final = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                tools=TOOLS,  # type: ignore[arg-type]
            )
            return final.choices[0].message.content

        t0 = time.perf_counter()
        answers = await asyncio.gather(*(run_once() for _ in range(runs)))
        elapsed = time.perf_counter() - t0
    assert all(answers), "some runs did not complete"
    return {"runs": float(len(answers)), "runs/s": runs / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--openai-requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=100, help="client connection pool size")
    args = parser.parse_args()
    with FakeOpenAIServer(handler=parallel_tools_handler()) as server:
        results = {
            "raw socket, non-streamed": raw_client(server, args.requests, stream=False),
            "raw socket, streamed": raw_client(server, args.requests, stream=True),
            "openai client, non-streamed": asyncio.run(
                openai_sequential(server, args.openai_requests)
            ),
            f"openai client, {args.runs} concurrent runs": asyncio.run(
                concurrent_runs(server, args.runs, args.pool)
            ),
        }
    for name, figures in results.items():
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
        print(f"{name:40} {shown}")


if __name__ == "__main__":
    main()
