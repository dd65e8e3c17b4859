"""SIGKILL at random instants of runs on a thread, on SQLite and a real PostgreSQL.

A child process runs agent runs on one thread in a loop (a model that calls one or two
tools, then answers) and is killed with SIGKILL at a random instant; after each kill the
thread must load, its stored history must be valid, and from time to time a new run
must continue it once the dead run's lease ran out. Each child marks the phase it is in
(model, tool, store call) in a file, so the test knows where its kills landed.

The children are forked from one process that imported everything once, so a kill's
cycle does not pay for an interpreter's start-up (on a busy 2-core machine that start-up,
not the runs, would set the test's time).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
import pytest
from conftest import Backend
from test_threads_store import ROOT

from agentkit import Agent, Message, ToolCall, tool
from agentkit.errors import ThreadBusy
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FunctionModel
from agentkit.threads import PostgresStore, SQLiteStore, Store, runner

pytestmark = pytest.mark.anyio

KILLS = 50
LEASE = 0.5  # the children's runner.LEASE: how long a killed run blocks the thread
MAX_DELAY = 0.6  # a child is killed this long at most after its first run started
CHECK_EVERY = 5  # a new run continues the thread after every so many kills
PHASES = {
    b"C": "create run",
    b"W": "thread busy",
    b"L": "load thread",
    b"M": "model",
    b"T": "tool",
    b"S": "store step",
    b"R": "run loop",
}

_phase_fd: int | None = None
_rng = random.Random(0)


def _phase(mark: bytes) -> bytes:
    """Record the phase this child is in; returns the previous one."""
    if _phase_fd is None:
        return b"R"
    previous = os.pread(_phase_fd, 1, 0)
    os.pwrite(_phase_fd, mark, 0)
    return previous


@tool
def lookup(city: str) -> str:
    """Weather for a city."""
    _phase(b"T")
    return f"rain in {city}"


@tool
async def clock(tz: str) -> str:
    """Time in a time zone."""
    _phase(b"T")
    await anyio.sleep(_rng.choice((0.002, 0.01, 0.02)))
    return f"12:00 in {tz}"


def check_history(messages: Sequence[Message], *, complete: bool) -> None:
    """Every tool result directly follows (among the results of) the assistant message
    that made its call, once; a call without a result is allowed only in the last
    assistant message, and only when not ``complete``."""
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        if message.role == "tool":
            assert message.tool_call_id in open_calls, (
                f"message {i}: tool result for {message.tool_call_id!r} answers no open call"
            )
            open_calls.discard(message.tool_call_id)
            continue
        assert not open_calls, f"message {i}: calls {sorted(open_calls)} have no result"
        open_calls = {call.id for call in message.tool_calls}
    assert not (complete and open_calls), f"calls {sorted(open_calls)} have no result"


async def reply(request: ModelRequest) -> Any:
    """Check that the request is a valid history; call one or two tools, then answer."""
    _phase(b"M")
    check_history(request.messages, complete=True)
    await anyio.sleep(_rng.choice((0.0, 0.001, 0.003)))
    if request.messages[-1].role != "user":
        return "done"
    calls = [ToolCall(f"call_{uuid.uuid4().hex[:12]}", "clock", '{"tz": "UTC"}')]
    if _rng.random() < 0.5:
        calls.insert(0, ToolCall(f"call_{uuid.uuid4().hex[:12]}", "lookup", '{"city": "Oslo"}'))
    return ModelResponse(Message.assistant(None, calls), "tool_calls")


def bot() -> tuple[Agent[str], FunctionModel]:
    model = FunctionModel(reply)
    return Agent(name="bot", instructions="Be brief.", model=model, tools=[lookup, clock]), model


# --- the children -------------------------------------------------------------------------


def forker() -> None:
    """Entry point of the process that makes the children: ``kind url thread_id
    phase_file``. It imports everything once, then forks a child for each number read
    on stdin (so a kill's cycle does not pay for an interpreter's start-up), waits for it
    and prints ``exit <code>``. A child prints ``started <pid>`` once its first run holds
    the thread."""
    kind, url, thread_id, phase_file = sys.argv[1:]
    for line in sys.stdin:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                anyio.run(_child, kind, url, thread_id, phase_file, int(line))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(3)  # a child never ends by itself: it is killed
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


async def _child(kind: str, url: str, thread_id: str, phase_file: str, seed: int) -> None:
    global _phase_fd
    runner.LEASE = LEASE
    _rng.seed(seed)
    _phase_fd = os.open(phase_file, os.O_RDWR)
    store: Any = SQLiteStore(url) if kind == "sqlite" else PostgresStore(url)
    started = False

    def marked(name: str, mark: bytes) -> None:
        method = getattr(store, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal started
            previous = _phase(mark)
            try:
                result = await method(*args, **kwargs)
            finally:
                _phase(previous)
            if name == "create_run" and not started:
                started = True
                print(f"started {os.getpid()}", flush=True)
            return result

        setattr(store, name, wrapper)

    for name, mark in (("create_run", b"C"), ("messages", b"L"), ("save_step", b"S")):
        marked(name, mark)
    agent, _ = bot()
    n = 0
    while True:
        _phase(b"R")
        try:
            result = await agent.run(f"question {n}", thread=thread_id, store=store)
        except ThreadBusy:  # the killed child's run holds the thread until its lease ends
            _phase(b"W")
            await anyio.sleep(0.02)
            continue
        assert result.status == "completed", result.status
        n += 1


# --- the test -----------------------------------------------------------------------------


class Forker:
    """The forker process, and killing its children."""

    def __init__(self, backend: Backend, thread_id: str, tmp: Path) -> None:
        self.phase_file = tmp / "phase"
        self.err = tmp / "children.err"
        with self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; sys.path.insert(1, 'tests'); "
                 "import test_threads_kill; test_threads_kill.forker()",
                 backend.kind, backend.url, thread_id, str(self.phase_file)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                start_new_session=True,  # its own process group, with all its children
            )  # fmt: skip

    async def line(self) -> str:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        with anyio.fail_after(60):
            return (await anyio.to_thread.run_sync(out.readline)).strip()

    async def start(self, seed: int) -> int:
        """Fork a child; returns its pid once its first run started."""
        self.phase_file.write_bytes(b"R")
        assert self.process.stdin is not None
        self.process.stdin.write(f"{seed}\n")
        self.process.stdin.flush()
        got = await self.line()
        assert got.startswith("started "), f"{got}\n{self.err.read_text()}"
        return int(got.split()[1])

    async def kill(self, pid: int) -> str:
        """SIGKILL the child; returns the phase it was in."""
        with contextlib.suppress(ProcessLookupError):  # it ended by itself: see below
            os.kill(pid, signal.SIGKILL)
        got = await self.line()
        # Killed, not ended by itself (a failed run or an invalid request ends it).
        assert got == f"exit {-signal.SIGKILL}", f"{got}\n{self.err.read_text()}"
        return PHASES[self.phase_file.read_bytes()[:1]]

    def close(self) -> None:
        """End the forker and any child still running (a test that failed midway)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


async def continue_thread(store: Store, thread_id: str) -> None:
    """A new run continues the thread once the killed run's lease ran out."""
    agent, model = bot()
    deadline = time.monotonic() + 10 * LEASE + 10
    while True:
        try:
            result = await agent.run("and now?", thread=thread_id, store=store)
            break
        except ThreadBusy:
            assert time.monotonic() < deadline, "the killed run kept blocking the thread"
            await anyio.sleep(0.05)
    assert result.status == "completed" and result.output == "done"
    # The request went out valid: the loop answered the dangling calls of the killed run.
    for request in model.requests:
        check_history(request.messages, complete=True)
    check_history(await store.messages(thread_id), complete=True)


async def test_sigkill_at_random_instants_leaves_a_thread_that_loads_and_continues(
    store: Store, backend: Backend, tmp_path: Path
) -> None:
    thread = await store.create_thread()
    rng = random.Random(12)
    phases: Counter[str] = Counter()
    forker = Forker(backend, thread.id, tmp_path)
    begin = time.monotonic()
    try:
        for kill in range(KILLS):
            pid = await forker.start(kill)
            await anyio.sleep(rng.uniform(0, MAX_DELAY))
            phases[await forker.kill(pid)] += 1

            stored = await store.messages(thread.id)
            check_history(stored, complete=False)
            assert (await store.get_thread(thread.id)).item_count == len(stored)
            if kill % CHECK_EVERY == CHECK_EVERY - 1:
                await continue_thread(store, thread.id)
    finally:
        forker.close()
    await continue_thread(store, thread.id)

    runs = await store.list_runs(thread.id)
    statuses = Counter(run.status for run in runs)
    assert set(statuses) <= {"completed", "expired"}, statuses
    assert statuses["expired"] <= KILLS  # at most the one run each kill interrupted
    print(f"\n{backend.kind}: {KILLS} kills in {time.monotonic() - begin:.0f} s, "
          f"{len(runs)} runs, {len(stored)} items; kills by phase: {dict(phases)}")  # fmt: skip
    # The random instants reach the model, the tools and the store.
    storing = phases["store step"]
    assert phases["model"] and phases["tool"] and storing, phases
