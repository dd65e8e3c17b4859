"""Durable runs on a real PostgreSQL, in real worker processes that get SIGKILLed.

The app the workers run is tests/durable_app.py (`agentkit worker durable_app:runner`).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _postgres import PostgresServer

pytest.importorskip("dbos")

HERE = Path(__file__).parent
ROOT = HERE.parent

pytestmark = pytest.mark.anyio


class Fleet:
    """Worker processes of tests/durable_app.py on one database."""

    def __init__(self, dsn: str, effects: Path, **env: str) -> None:
        self.dsn = dsn
        self.effects = effects
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
            "AGENTKIT_TEST_DSN": dsn,
            "AGENTKIT_TEST_EFFECTS": str(effects),
            **env,
        }
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.kills = 0

    def start(self, *executor_ids: str, concurrency: int = 10, wait: bool = True) -> None:
        """Start workers (in parallel) and wait until each one takes runs."""
        command = [sys.executable, "-m", "agentkit", "worker", "durable_app:runner",
                   "--concurrency", str(concurrency), "--executor-id"]  # fmt: skip
        started = {
            name: subprocess.Popen(
                [*command, name], cwd=HERE, env=self.env, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True,
            )
            for name in executor_ids
        }
        for name, process in started.items():
            self.workers[name] = process
            if not wait:
                continue
            assert process.stdout is not None
            line = process.stdout.readline()  # the worker says so once it takes runs
            assert "agentkit worker" in line, f"worker {name} did not start: {line!r}"

    def kill(self, executor_id: str) -> None:
        process = self.workers.pop(executor_id)
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills += 1

    def stop_all(self) -> None:
        for process in self.workers.values():
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.workers.clear()

    def submit_in_subprocess(self, code: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", code], cwd=HERE, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip


def sql(dsn: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


@pytest.fixture
def fleet(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    dsn = postgres.new_database()
    effects = tmp_path / "effects.log"
    monkeypatch.setenv("AGENTKIT_TEST_DSN", dsn)
    monkeypatch.setenv("AGENTKIT_TEST_EFFECTS", str(effects))
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("durable_app", None)
    workers = Fleet(dsn, effects)
    try:
        yield workers
    finally:
        workers.stop_all()
        sys.modules.pop("durable_app", None)


def app() -> Any:
    import durable_app

    return durable_app


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_runs_survive_random_sigkills(fleet: Fleet) -> None:
    fleet.env.update(AGENTKIT_TEST_DELAY="0.02", AGENTKIT_TEST_TOOL_DELAY="0.05")
    fleet.start("w0", "w1")
    runner = app().runner
    handles = await asyncio.gather(
        *(runner.submit("jobs", f"job {i}", idempotency_key=f"job-{i}") for i in range(100))
    )
    rng = random.Random(7)
    generation = 2
    # Kill a random worker at random moments while the runs go on, and start a new one.
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        fleet.kill(rng.choice(sorted(fleet.workers)))
        fleet.start(f"w{generation}", wait=False)
        generation += 1
    started = time.monotonic()
    try:
        results = [await h.result(timeout=90) for h in handles]
    except Exception:
        print(sql(fleet.dsn, "SELECT executor_id, status, count(*) FROM dbos.workflow_status "
                             "GROUP BY 1, 2"))
        print(sql(fleet.dsn, "SELECT *, now() FROM agentkit_workers"))
        print({n: p.poll() for n, p in fleet.workers.items()})
        raise
    print(f"all done {time.monotonic() - started:.1f}s after the last kill")

    assert [r.status for r in results] == ["completed"] * 100
    expected_keys = []
    for handle, result in zip(handles, results, strict=True):
        stored = await runner.store.messages(result.messages and (await handle.record()).thread_id)
        # 0 lost and 0 duplicated items: the whole conversation, each item once, in order.
        assert [(m.role, m.text) for m in stored] == [
            ("user", stored[0].text),
            ("assistant", ""), ("tool", "recorded 0"),
            ("assistant", ""), ("tool", "recorded 1"),
            ("assistant", ""), ("tool", "recorded 2"),
            ("assistant", "all recorded"),
        ]  # fmt: skip
        expected_keys += [f"{handle.run_id}:call_{i}" for i in range(3)]
    effects = lines(fleet.effects)
    # Every tool call whose step finished left its effect exactly once.
    assert Counter(effects) == Counter(expected_keys)
    # A finished step is never run again: only the calls in flight at a kill ran twice.
    attempts = Counter(lines(fleet.effects.with_suffix(".attempts")))
    rerun = sum(n - 1 for n in attempts.values())
    assert set(attempts) == set(expected_keys)
    assert rerun <= fleet.kills * 10  # at most one call in flight per run, 10 runs a worker
    await runner.close()


def pending_on(dsn: str, executor_id: str) -> int:
    rows = sql(
        dsn,
        "SELECT count(*) FROM dbos.workflow_status WHERE executor_id = %s AND status = 'PENDING'",
        (executor_id,),
    )
    return int(rows[0][0])


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_killed_workers_runs_are_adopted_by_the_other(fleet: Fleet) -> None:
    fleet.env.update(AGENTKIT_TEST_DELAY="0.2")
    fleet.start("a", "b", concurrency=4)
    runner = app().runner
    handles = await asyncio.gather(*(runner.submit("jobs", f"job {i}") for i in range(8)))
    await wait_for(lambda: pending_on(fleet.dsn, "a") > 0, 30, "worker a to take runs")
    taken = pending_on(fleet.dsn, "a")
    fleet.kill("a")
    killed = time.monotonic()
    await wait_for(lambda: pending_on(fleet.dsn, "a") == 0, 60, "adoption")
    adopted_after = time.monotonic() - killed
    results = [await h.result(timeout=60) for h in handles]
    assert [r.status for r in results] == ["completed"] * 8
    executors = sql(fleet.dsn, "SELECT DISTINCT executor_id FROM dbos.workflow_status")
    assert executors == [("b",)]  # b finished every run, a's included
    assert len(lines(fleet.effects)) == len(set(lines(fleet.effects))) == 8 * 3
    # dead_after=3 in the test app (10 by default): well within the promised 60 s.
    print(f"{taken} runs of the killed worker adopted {adopted_after:.1f}s after the kill")
    assert adopted_after < 3 + 0.5 + 10
    await runner.close()


async def test_one_idempotency_key_from_two_processes_is_one_run(fleet: Fleet) -> None:
    runner = app().runner
    await runner._client()  # the DBOS tables exist before the racers start
    go = fleet.effects.with_suffix(".go")
    code = (
        "import asyncio, os, time, durable_app\n"
        "async def main():\n"
        "    await durable_app.runner._client()\n"
        "    print('ready', flush=True)\n"
        f"    while not os.path.exists({str(go)!r}):\n"
        "        time.sleep(0.001)\n"
        "    handle = await durable_app.runner.submit('jobs', 'once', idempotency_key='k-1')\n"
        "    print(handle.run_id)\n"
        "    await durable_app.runner.close()\n"
        "asyncio.run(main())\n"
    )
    racers = [fleet.submit_in_subprocess(code) for _ in range(2)]
    for racer in racers:  # both imported and connected: now they submit at the same instant
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    go.touch()
    outputs = [p.communicate(timeout=60) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    ids = {out.strip() for out, _ in outputs}
    assert len(ids) == 1
    assert sql(fleet.dsn, "SELECT count(*) FROM runs WHERE idempotency_key = 'k-1'") == [(1,)]
    assert sql(fleet.dsn, "SELECT count(*) FROM dbos.workflow_status") == [(1,)]
    assert sql(fleet.dsn, "SELECT count(*) FROM threads") == [(1,)]  # the loser's is gone

    from agentkit.errors import IdempotencyConflict

    with pytest.raises(IdempotencyConflict, match="k-1") as caught:
        await runner.submit("jobs", "something else", idempotency_key="k-1")
    assert caught.value.run_id == ids.pop()
    with pytest.raises(IdempotencyConflict):
        await runner.submit("support", "once", idempotency_key="k-1")
    await runner.close()


async def test_a_waiting_run_outlives_its_worker_and_resumes_from_another_process(
    fleet: Fleet,
) -> None:
    fleet.start("a", "b")
    runner = app().runner
    handle = await runner.submit("support", "refund my 30 euros", idempotency_key="refund-1")
    waiting = await handle.result(timeout=60)
    assert waiting.status == "requires_action"
    assert [(p.name, p.arguments) for p in waiting.pending] == [("refund", {"amount": 30})]
    [(holder,)] = sql(
        fleet.dsn, "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = %s",
        (handle.run_id,),
    )  # fmt: skip
    fleet.kill(holder)  # the worker dies while the run waits for a person
    code = (
        "import asyncio, durable_app\n"
        "async def main():\n"
        f"    await durable_app.runner.resume({handle.run_id!r}, approve=['call_r'])\n"
        "    await durable_app.runner.close()\n"
        "asyncio.run(main())\n"
    )
    resumer = fleet.submit_in_subprocess(code)
    assert resumer.communicate(timeout=60)[0] == "" and resumer.returncode == 0
    result = await runner.handle(handle.run_id).result(timeout=60)
    while result.status == "requires_action":  # not yet adopted by b: still the old wait
        await asyncio.sleep(0.2)
        result = await runner.handle(handle.run_id).result(timeout=60)
    assert result.status == "completed"
    assert result.output == "refund handled: refunded 30"
    assert lines(fleet.effects) == [f"refund 30 {handle.run_id}:call_r"]
    roles = [m.role for m in await runner.store.messages((await handle.record()).thread_id)]
    assert roles == ["user", "assistant", "tool", "assistant"]

    # A waiting run cancelled from here ends at once, and its worker lets it go.
    other = await runner.submit("support", "refund 30 more")
    assert (await other.result(timeout=60)).status == "requires_action"
    await runner.cancel(other.run_id)
    cancelled = await other.result(timeout=60)
    assert cancelled.status == "cancelled" and cancelled.output is None
    await wait_for(
        lambda: sql(fleet.dsn, "SELECT status FROM dbos.workflow_status WHERE workflow_uuid = %s",
                    (other.run_id,)) == [("SUCCESS",)],
        30, "the workflow of the cancelled run to end",
    )  # fmt: skip
    assert len(lines(fleet.effects)) == 1  # the cancelled refund never ran
    await runner.close()


def test_worker_command_refuses_what_is_not_a_runner(capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.cli import main

    assert main(["worker", "durable_app:jobs"]) == 2
    assert "is a Agent, not an agentkit.durable.DurableRunner" in capsys.readouterr().err
