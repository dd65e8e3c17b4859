"""One suite for both thread stores: every test runs on SQLite and on a real PostgreSQL
server (started for the session by tests/_postgres.py)."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
from _postgres import PostgresServer
from conftest import Backend

from agentkit import ConfigurationError, Message, ToolCall, Usage
from agentkit.errors import (
    NotFound,
    RunStatusError,
    StoreUnavailable,
    StoreVersionError,
    ThreadBusy,
)
from agentkit.threads import PendingCall, PostgresStore, SQLiteStore, Store, _sql

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


def run_script(backend: Backend, body: str, *args: str) -> subprocess.Popen[str]:
    """Start another Python process that opens the same database as ``store``."""
    code = textwrap.dedent(
        """
        import sys, time, anyio
        from agentkit import Message
        from agentkit.errors import ThreadBusy
        from agentkit.threads import SQLiteStore, PostgresStore

        kind, url, *args = sys.argv[1:]
        store = SQLiteStore(url) if kind == "sqlite" else PostgresStore(url)
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, backend.kind, backend.url, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def conversation() -> list[Message]:
    return [
        Message.system("You are terse."),
        Message.user("Weather in Paris? ☀"),
        Message.assistant(
            None,
            tool_calls=[
                ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_2", "get_time", "{}"),
            ],
        ),
        Message.tool("call_1", '{"temp": 21}', name="get_weather"),
        Message.tool("call_2", "boom: no clock", name="get_time", is_error=True),
        Message.assistant("21 °C in Paris."),
    ]


# --- threads and items ------------------------------------------------------------------


async def test_messages_round_trip_in_order(store: Store) -> None:
    thread = await store.create_thread(metadata={"user": "u1"})
    assert thread.id.startswith("thread_") and thread.metadata == {"user": "u1"}
    sent = conversation()
    assert await store.append_items(thread.id, None, sent[:2]) == 2
    assert await store.append_items(thread.id, None, sent[2:]) == 6

    assert await store.messages(thread.id) == sent
    assert (await store.get_thread(thread.id)).item_count == 6
    assert await store.messages(thread.id, start=4) == sent[4:]
    assert await store.messages(thread.id, start=-2) == sent[-2:]
    assert await store.messages(thread.id, start=-100) == sent
    assert await store.append_items(thread.id, None, []) == 6


async def test_items_are_versioned_json_of_the_wire_format(store: Store, backend: Backend) -> None:
    thread = await store.create_thread()
    await store.append_items(thread.id, None, conversation())
    rows = backend.sql(
        "SELECT position, kind, format, data FROM items WHERE thread_id = ? ORDER BY position",
        (thread.id,),
    )
    assert [row[:3] for row in rows] == [(i, "message", 1) for i in range(6)]
    assert json.loads(rows[2][3])["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(rows[4][3]) == {
        "role": "tool",
        "content": "boom: no clock",
        "tool_call_id": "call_2",
        "is_error": True,
        "name": "get_time",
    }


async def test_item_of_a_newer_format_is_refused(store: Store, backend: Backend) -> None:
    thread = await store.create_thread()
    await store.append_items(thread.id, None, conversation())
    backend.sql("UPDATE items SET format = 2 WHERE position = 3")

    with pytest.raises(StoreVersionError, match=r"item 3 .* format version 2.*upgrade agentkit"):
        await store.messages(thread.id)


async def test_an_append_is_all_or_nothing(store: Store) -> None:
    thread = await store.create_thread()
    await store.append_items(thread.id, None, [Message.user("first")])
    run = await store.create_run(thread.id, "bot")
    await store.update_run(run.id, status="failed", error="boom")

    # The run check fails after the positions were reserved: everything rolls back.
    with pytest.raises(RunStatusError, match="'failed'"):
        await store.append_items(thread.id, run.id, [Message.user("a"), Message.user("b")])
    assert await store.messages(thread.id) == [Message.user("first")]
    assert (await store.get_thread(thread.id)).item_count == 1
    assert await store.append_items(thread.id, None, [Message.user("next")]) == 2


async def test_concurrent_batches_on_one_thread_never_interleave(store: Store) -> None:
    thread = await store.create_thread()

    async def batch(n: int) -> None:
        await store.append_items(thread.id, None, [Message.user(f"{n}:{i}") for i in range(10)])

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(batch, n)

    texts = [m.text for m in await store.messages(thread.id)]
    assert len(texts) == 200
    for start in range(0, 200, 10):
        chunk = texts[start : start + 10]
        owner = chunk[0].split(":")[0]
        assert chunk == [f"{owner}:{i}" for i in range(10)]


async def test_concurrent_failing_appends_undo_only_themselves(store: Store) -> None:
    thread = await store.create_thread()
    ended = await store.create_run(thread.id, "bot")
    await store.update_run(ended.id, status="completed")
    failures: list[int] = []

    async def batch(n: int) -> None:
        items = [Message.user(f"{n}:{i}") for i in range(3)]
        try:
            # Odd writers claim a run that has ended: each of them must fail alone.
            await store.append_items(thread.id, ended.id if n % 2 else None, items)
        except RunStatusError:
            failures.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(batch, n)

    assert sorted(failures) == list(range(1, 20, 2))
    texts = [m.text for m in await store.messages(thread.id)]
    assert sorted(texts) == sorted(f"{n}:{i}" for n in range(0, 20, 2) for i in range(3))
    assert (await store.get_thread(thread.id)).item_count == 30


async def test_twenty_threads_appending_concurrently_keep_their_order(store: Store) -> None:
    threads = [await store.create_thread() for _ in range(20)]

    async def writer(thread_id: str) -> None:
        for i in range(25):
            await store.append_items(thread_id, None, [Message.user(f"{thread_id}/{i}")])

    async with anyio.create_task_group() as tg:
        for thread in threads:
            tg.start_soon(writer, thread.id)

    for thread in threads:
        texts = [m.text for m in await store.messages(thread.id)]
        assert texts == [f"{thread.id}/{i}" for i in range(25)]


async def test_two_processes_append_to_one_thread(store: Store, backend: Backend) -> None:
    thread = await store.create_thread()
    body = """
        thread_id, name = args
        async def main():
            for i in range(100):
                await store.append_items(thread_id, None, [Message.user(f"{name}{i}")])
            await store.close()
        anyio.run(main)
    """
    procs = [run_script(backend, body, thread.id, name) for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    texts = [m.text for m in await store.messages(thread.id)]
    assert len(texts) == 200
    for name in ("a", "b"):
        assert [t for t in texts if t.startswith(name)] == [f"{name}{i}" for i in range(100)]


async def test_a_writer_killed_at_random_instants_leaves_a_consistent_thread(
    store: Store, backend: Backend
) -> None:
    thread = await store.create_thread()
    body = """
        thread_id, kill = args
        async def main():
            run = await store.create_run(thread_id, "bot", lease=0.2)
            for b in range(10_000):
                batch = [Message.user(f"{kill}:{b}:{i}") for i in range(3)]
                await store.append_items(thread_id, run.id, batch)
                if b == 0:
                    print("ready", flush=True)
        anyio.run(main)
    """
    written = 0
    for kill in range(8):
        proc = run_script(backend, body, thread.id, str(kill))
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        await anyio.sleep(random.uniform(0, 0.05))
        proc.kill()  # SIGKILL: no cleanup, possibly in the middle of a transaction
        proc.communicate(timeout=60)
        await anyio.sleep(0.25)  # its lease runs out

        # The next run proceeds; what the dead one wrote is there in whole batches.
        run = await store.create_run(thread.id, "bot")
        texts = [m.text for m in await store.messages(thread.id)]
        assert (await store.get_thread(thread.id)).item_count == len(texts)
        assert len(texts) % 3 == 0 and len(texts) > written  # batch 0 was committed
        written = len(texts)
        for start in range(0, len(texts), 3):
            prefix = texts[start].rsplit(":", 1)[0]
            assert texts[start : start + 3] == [f"{prefix}:{i}" for i in range(3)]
        await store.update_run(run.id, status="completed")
    statuses = [r.status for r in await store.list_runs(thread.id)]
    assert statuses == ["expired", "completed"] * 8


async def test_list_threads_pages_newest_first_and_filters(store: Store) -> None:
    made = [await store.create_thread(metadata={"team": "ab"[i % 2]}) for i in range(5)]
    newest_first = [t.id for t in reversed(made)]

    assert [t.id for t in await store.list_threads()] == newest_first
    page1 = await store.list_threads(limit=2)
    page2 = await store.list_threads(limit=2, after=page1[-1].id)
    page3 = await store.list_threads(limit=2, after=page2[-1].id)
    assert [t.id for t in page1 + page2 + page3] == newest_first
    assert [t.id for t in await store.list_threads(limit=2, before=page2[0].id)] == [
        t.id for t in page1
    ]
    assert [t.id for t in await store.list_threads(metadata={"team": "a"})] == newest_first[::2]
    assert await store.list_threads(metadata={"team": "z"}) == []


async def test_metadata_must_be_strings(store: Store) -> None:
    with pytest.raises(ConfigurationError, match="strings to strings"):
        await store.create_thread(metadata={"n": 1})  # type: ignore[dict-item]


async def test_delete_thread_deletes_its_items_and_runs(store: Store, backend: Backend) -> None:
    keep = await store.create_thread()
    await store.append_items(keep.id, None, [Message.user("stay")])
    thread = await store.create_thread()
    await store.append_items(thread.id, None, conversation())
    run = await store.create_run(thread.id, "bot")
    await store.append_items(thread.id, run.id, [Message.assistant("in run")])

    await store.delete_thread(thread.id)

    with pytest.raises(NotFound):
        await store.get_thread(thread.id)
    with pytest.raises(NotFound):
        await store.get_run(run.id)
    assert backend.sql("SELECT COUNT(*) FROM items WHERE thread_id = ?", (thread.id,)) == [(0,)]
    assert backend.sql("SELECT COUNT(*) FROM runs") == [(0,)]
    assert [t.id for t in await store.list_threads()] == [keep.id]
    assert await store.messages(keep.id) == [Message.user("stay")]


async def test_unknown_ids_raise_not_found(store: Store) -> None:
    thread = await store.create_thread()
    with pytest.raises(NotFound, match=r"no thread with id 'thread_nope'.*list_threads"):
        await store.messages("thread_nope")
    with pytest.raises(NotFound, match=r"no run with id 'run_nope'"):
        await store.get_run("run_nope")
    for call in (
        store.get_thread("thread_nope"),
        store.delete_thread("thread_nope"),
        store.append_items("thread_nope", None, [Message.user("x")]),
        store.create_run("thread_nope", "bot"),
        store.list_runs("thread_nope"),
        store.cancel_run("run_nope"),
        store.update_run("run_nope", status="completed"),
        store.append_items(thread.id, "run_nope", [Message.user("x")]),
    ):
        with pytest.raises(NotFound):
            await call
    assert await store.messages(thread.id) == []


# --- runs -------------------------------------------------------------------------------


async def test_run_life_cycle(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "weather", state='{"s": 1}')
    assert (run.status, run.agent, run.thread_id, run.state) == (
        "in_progress",
        "weather",
        thread.id,
        '{"s": 1}',
    )
    assert run.lease_until is not None and run.ended_at is None and run.active

    await store.append_items(thread.id, run.id, conversation()[:3])
    pending = [PendingCall("call_1", "delete_file", {"path": "a.txt"}, "approval")]
    waiting = await store.update_run(
        run.id, status="requires_action", pending=pending, usage=Usage(requests=1)
    )
    assert waiting.pending == pending and waiting.lease_until is None
    assert waiting.usage == Usage(requests=1)

    resumed = await store.update_run(run.id, status="in_progress", pending=[])
    done = await store.update_run(resumed.id, status="completed", usage=Usage(requests=2))
    assert done.status == "completed" and done.ended_at is not None and not done.active
    assert await store.get_run(run.id) == done
    assert [r.id for r in await store.list_runs(thread.id)] == [run.id]
    assert len(await store.messages(thread.id)) == 3

    with pytest.raises(RunStatusError, match=r"'completed' and cannot become 'in_progress'"):
        await store.update_run(run.id, status="in_progress")
    with pytest.raises(RunStatusError):
        await store.update_run(run.id, usage=Usage(requests=9))
    assert (await store.get_run(run.id)).usage == Usage(requests=2)


async def test_one_active_run_per_thread(store: Store) -> None:
    thread = await store.create_thread()
    other = await store.create_thread()
    first = await store.create_run(thread.id, "bot")
    await store.create_run(other.id, "bot")  # other threads are independent

    with pytest.raises(ThreadBusy, match=f"already has an active run \\({first.id}") as caught:
        await store.create_run(thread.id, "bot")
    assert caught.value.run_id == first.id
    with pytest.raises(ThreadBusy):
        await store.append_items(thread.id, None, [Message.user("sneaking in")])

    # Waiting for a person still holds the thread, however long it waits.
    await store.update_run(first.id, status="requires_action")
    with pytest.raises(ThreadBusy):
        await store.create_run(thread.id, "bot")
    await store.update_run(first.id, status="in_progress")
    await store.update_run(first.id, status="completed")
    second = await store.create_run(thread.id, "bot")
    assert [r.id for r in await store.list_runs(thread.id)] == [first.id, second.id]


async def test_the_database_itself_refuses_a_second_active_run(
    store: Store, backend: Backend
) -> None:
    thread = await store.create_thread()
    await store.create_run(thread.id, "bot")
    with pytest.raises(Exception, match=r"(?i)unique"):
        backend.sql(
            "INSERT INTO runs (id, thread_id, agent, status, usage, pending, created_at) "
            "VALUES ('run_x', ?, 'bot', 'queued', '{}', '[]', 0)",
            (thread.id,),
        )


async def test_concurrent_create_run_tasks_exactly_one_wins(store: Store) -> None:
    thread = await store.create_thread()
    won: list[str] = []
    busy: list[ThreadBusy] = []

    async def attempt() -> None:
        try:
            won.append((await store.create_run(thread.id, "bot")).id)
        except ThreadBusy as exc:
            busy.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(attempt)

    assert len(won) == 1 and len(busy) == 19
    assert {exc.run_id for exc in busy} <= {won[0], None}
    assert [r.id for r in await store.list_runs(thread.id)] == won


async def test_concurrent_create_run_processes_exactly_one_wins(
    store: Store, backend: Backend, tmp_path: Path
) -> None:
    thread = await store.create_thread()
    go = tmp_path / "go"
    body = """
        import os
        thread_id, go = args
        async def main():
            await store.get_thread(thread_id)  # connected and migrated before the race
            print("ready", flush=True)
            while not os.path.exists(go):
                await anyio.sleep(0.001)
            try:
                run = await store.create_run(thread_id, "bot")
                print("won", run.id)
            except ThreadBusy:
                print("busy")
            await store.close()
        anyio.run(main)
    """
    procs = [run_script(backend, body, thread.id, str(go)) for _ in range(4)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    winners = [out[1] for out in outputs if out[0] == "won"]
    assert len(winners) == 1 and sum(out == ["busy"] for out in outputs) == 3
    assert [r.id for r in await store.list_runs(thread.id)] == winners


async def test_an_expired_lease_stops_blocking_the_thread(store: Store) -> None:
    thread = await store.create_thread()
    dead = await store.create_run(thread.id, "bot", lease=0.3)
    with pytest.raises(ThreadBusy):
        await store.create_run(thread.id, "bot")
    await anyio.sleep(0.4)

    fresh = await store.create_run(thread.id, "bot")

    old = await store.get_run(dead.id)
    assert old.status == "expired" and old.ended_at is not None
    assert old.error is not None and "lease" in old.error
    assert fresh.status == "in_progress"
    # The process that lost its run can no longer write to the thread or the run.
    with pytest.raises(RunStatusError, match="'expired'"):
        await store.append_items(thread.id, dead.id, [Message.assistant("late")])
    with pytest.raises(RunStatusError):
        await store.update_run(dead.id, lease_until=datetime.now(timezone.utc))


async def test_renewing_the_lease_keeps_the_run(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot", lease=0.3)
    await store.update_run(run.id, lease_until=datetime.now(timezone.utc) + timedelta(seconds=30))
    await anyio.sleep(0.4)
    with pytest.raises(ThreadBusy):
        await store.create_run(thread.id, "bot")
    assert (await store.get_run(run.id)).status == "in_progress"


async def test_a_dead_run_reads_as_expired(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot", lease=0.1)
    await anyio.sleep(0.2)
    assert (await store.get_run(run.id)).status == "expired"
    assert [r.status for r in await store.list_runs(thread.id)] == ["expired"]


async def test_a_waiting_run_never_expires(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot", lease=0.1)
    await store.update_run(run.id, status="requires_action")
    await anyio.sleep(0.2)
    with pytest.raises(ThreadBusy):
        await store.create_run(thread.id, "bot")
    assert (await store.get_run(run.id)).status == "requires_action"


async def test_cancel_transitions(store: Store) -> None:
    thread = await store.create_thread()
    running = await store.create_run(thread.id, "bot")
    cancelling = await store.cancel_run(running.id)
    assert cancelling.status == "cancelling" and cancelling.ended_at is None
    assert (await store.cancel_run(running.id)).status == "cancelling"  # asking twice is fine
    with pytest.raises(ThreadBusy):
        await store.create_run(thread.id, "bot")
    with pytest.raises(RunStatusError):
        await store.update_run(running.id, status="in_progress")
    # The owner stops at its next step.
    assert (await store.update_run(running.id, status="cancelled")).ended_at is not None

    waiting = await store.create_run(thread.id, "bot")
    await store.update_run(waiting.id, status="requires_action")
    assert (await store.cancel_run(waiting.id)).status == "cancelled"

    queued = await store.create_run(thread.id, "bot", status="queued")
    assert (await store.cancel_run(queued.id)).status == "cancelled"

    finished = await store.create_run(thread.id, "bot")
    await store.update_run(finished.id, status="completed")
    with pytest.raises(RunStatusError, match="already ended with status 'completed'"):
        await store.cancel_run(finished.id)
    with pytest.raises(RunStatusError, match="'cancelled'"):
        await store.cancel_run(queued.id)

    orphan = await store.create_run(thread.id, "bot", lease=0.1)
    await anyio.sleep(0.2)  # its owner is gone: nobody would finish the cancelling
    assert (await store.cancel_run(orphan.id)).status == "cancelled"


async def test_expect_lets_exactly_one_resumer_win(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot")
    await store.update_run(run.id, status="requires_action")
    outcomes: list[str] = []

    async def resume() -> None:
        try:
            await store.update_run(run.id, status="in_progress", expect=["requires_action"])
            outcomes.append("won")
        except RunStatusError as exc:
            assert exc.status == "in_progress"
            outcomes.append("lost")

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(resume)
    assert sorted(outcomes) == ["lost"] * 9 + ["won"]


async def test_idempotency_key_returns_the_same_run(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot", idempotency_key="order-42")
    again = await store.create_run(thread.id, "bot", idempotency_key="order-42")
    assert again == run


async def test_a_run_cannot_start_finished(store: Store) -> None:
    thread = await store.create_thread()
    with pytest.raises(ConfigurationError, match="'queued' or 'in_progress'"):
        await store.create_run(thread.id, "bot", status="completed")


# --- schema -----------------------------------------------------------------------------


async def test_schema_is_versioned(store: Store, backend: Backend) -> None:
    await store.create_thread()
    assert backend.sql("SELECT version FROM schema_version") == [(_sql.SCHEMA_VERSION,)]


async def test_a_newer_schema_is_refused(store: Store, backend: Backend) -> None:
    thread = await store.create_thread()
    backend.sql("INSERT INTO schema_version VALUES (99, 0)")
    newer = backend.open()
    try:
        with pytest.raises(StoreVersionError, match=r"schema version 99.*upgrade agentkit"):
            await newer.messages(thread.id)
    finally:
        await newer.close()


async def test_an_old_schema_is_migrated_keeping_its_data(
    store: Store, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = await store.create_thread(metadata={"k": "v"})
    await store.append_items(thread.id, None, conversation())
    await store.close()
    monkeypatch.setattr(_sql, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(_sql.MIGRATIONS, 2, ("CREATE INDEX items_by_run ON items (run_id)",))

    upgraded = backend.open()
    try:
        assert await upgraded.messages(thread.id) == conversation()
    finally:
        await upgraded.close()
    assert backend.sql("SELECT version FROM schema_version ORDER BY version") == [(1,), (2,)]


# --- faults specific to one database -----------------------------------------------------


async def test_sqlite_locked_database_is_a_typed_error_and_leaves_the_loop_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agentkit.db"
    store = SQLiteStore(path, timeout=0.5)
    thread = await store.create_thread()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.02)
            ticks += 1

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            with pytest.raises(StoreUnavailable, match=r"locked .* SQLiteStore\(timeout="):
                await store.append_items(thread.id, None, [Message.user("x")])
            tg.cancel_scope.cancel()
        assert ticks >= 10  # the event loop kept running while the write waited
        assert await store.messages(thread.id) == []  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await store.close()
    assert (await SQLiteStore(path).get_thread(thread.id)).item_count == 0


async def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello " * 1000)
    with pytest.raises(Exception, match="not a usable SQLite database") as caught:
        await SQLiteStore(path).create_thread()
    assert caught.type.__module__ == "agentkit.errors"


async def test_postgres_down_is_a_typed_error_without_the_password() -> None:
    with socket_closed_port() as port:
        store = PostgresStore(f"postgresql://bob:hunter22pw@127.0.0.1:{port}/db", timeout=1)
        with pytest.raises(StoreUnavailable, match=rf"127.0.0.1:{port}/db.*server is up") as e:
            await store.create_thread()
    assert "hunter22pw" not in str(e.value) and "hunter22pw" not in repr(store)


def test_postgres_store_follows_each_event_loop(postgres: PostgresServer) -> None:
    store = PostgresStore(postgres.new_database())
    thread = anyio.run(store.create_thread)
    # A second loop (as each run_sync() has) gets its own pool.
    assert anyio.run(store.get_thread, thread.id) == thread
    anyio.run(store.close)


def test_postgres_extra_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    store = PostgresStore("postgresql://127.0.0.1:1/x")
    with pytest.raises(ConfigurationError, match=r"agentkit\[postgres\]"):
        anyio.run(store.create_thread)


class socket_closed_port:
    """A local port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


async def test_a_step_is_stored_whole_or_not_at_all(store: Store) -> None:
    thread = await store.create_thread()
    run = await store.create_run(thread.id, "bot")
    record = await store.save_step(thread.id, run.id, [Message.user("hi")], usage=Usage(1))
    assert record.usage.requests == 1 and len(await store.messages(thread.id)) == 1
    # The messages can be appended but the run cannot go back to queued: nothing is kept.
    with pytest.raises(RunStatusError):
        await store.save_step(thread.id, run.id, [Message.assistant("lost")], status="queued")
    assert [m.text for m in await store.messages(thread.id)] == ["hi"]
