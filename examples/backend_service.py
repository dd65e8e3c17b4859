"""An HTTP chat service: one agent run per request, one conversation per user.

    python examples/backend_service.py              # serve on http://127.0.0.1:8000
    python examples/backend_service.py --selftest   # start it, send a few requests, stop
    OPENAI_API_KEY=sk-... python examples/backend_service.py

It needs Starlette and uvicorn (``pip install starlette uvicorn``; both are in
``agentkit[dev]``).

    curl -s localhost:8000/chat -d '{"user": "ada", "message": "Hi, I am Ada."}'
    curl -s -X DELETE localhost:8000/chat/ada       # forget ada's conversation

The ``Agent`` is created once and shared by every request: it holds no per-run state. Each
user's conversation is kept in memory (``result.messages`` after each run, passed back as
``history=``); a per-user lock keeps two requests of one user from racing. The end user's
id is sent to the model as a hash, never as the raw name. A real service would keep the
conversations in a database (``result.to_openai()`` is plain JSON).

Offline, a ``FunctionModel`` stands in for the model: it answers from the conversation it
is given, which shows that each user's history arrives intact.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentkit import Agent, AgentkitError, Message, ModelSettings
from agentkit.models import Model, ModelRequest, hash_user_id
from agentkit.testing import FunctionModel


def _stand_in(request: ModelRequest) -> str:
    """Offline stand-in: reply with what it can see of this user's conversation."""
    said = [m.text for m in request.messages if m.role == "user"]
    if len(said) == 1:
        return f"Nice to meet you! You said: {said[0]!r}."
    return f"This is message {len(said)} of our chat. You first said: {said[0]!r}."


def _model() -> Model | str:
    if os.environ.get("OPENAI_API_KEY"):
        return "gpt-4o-mini"
    return FunctionModel(_stand_in, name="offline-stand-in")


agent: Agent[str] = Agent(
    name="support",
    instructions="You are a friendly support assistant. Keep answers short.",
    model=_model(),
)

conversations: dict[str, list[Message]] = {}
_locks: dict[str, anyio.Lock] = {}


async def chat(request: Request) -> Response:
    """POST /chat {"user": ..., "message": ...} -> {"reply": ..., "messages": n}."""
    try:
        data = await request.json()
        user, message = str(data["user"]), str(data["message"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse(
            {"error": 'send JSON like {"user": "ada", "message": "Hello"}'}, status_code=400
        )
    lock = _locks.setdefault(user, anyio.Lock())
    async with lock:
        try:
            result = await agent.run(
                message,
                history=conversations.get(user, []),
                settings=ModelSettings(user=hash_user_id(user)),
            )
        except AgentkitError as exc:
            # The conversation is unchanged, so the user can simply retry.
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=502)
        conversations[user] = result.messages
    return JSONResponse({"reply": result.output, "messages": len(result.messages)})


async def forget(request: Request) -> Response:
    """DELETE /chat/{user}: drop that user's conversation."""
    conversations.pop(request.path_params["user"], None)
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/chat", chat, methods=["POST"]),
        Route("/chat/{user}", forget, methods=["DELETE"]),
    ]
)


def _post(base: str, user: str, message: str) -> dict[str, Any]:
    body = json.dumps({"user": user, "message": message}).encode()
    request = urllib.request.Request(
        f"{base}/chat", body, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        reply: dict[str, Any] = json.loads(response.read())
    return reply


def selftest() -> list[dict[str, Any]]:
    """Serve on a free port, hold two users' conversations, print and return the replies."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    replies = []
    try:
        for user, message in [
            ("ada", "Hi, I am Ada."),
            ("alan", "Hello, Alan here."),
            ("ada", "Do you remember me?"),
        ]:
            reply = _post(base, user, message)
            print(f"{user}> {message}\n  {reply['reply']}  ({reply['messages']} messages)")
            replies.append(reply)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return replies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selftest", action="store_true", help="run a short demo and exit")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    print(f"model: {agent.model.name}")
    if args.selftest:
        selftest()
    else:
        uvicorn.run(app, host="127.0.0.1", port=args.port)
