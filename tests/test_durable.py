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

    def start(self, *executor_ids: str, concurrency: int = 10) -> None:
        """Start workers (in parallel) and wait until each one takes runs."""
        started = {
            name: subprocess.Popen(
                [sys.executable, "-m", "agentkit", "worker", "durable_app:runner",
                 "--concurrency", str(concurrency), "--executor-id", name],
                cwd=HERE, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            for name in executor_ids
        }
        for name, process in started.items():
            assert process.stdout is not None
            line = process.stdout.readline()  # the worker says so once it takes runs
            assert "agentkit worker" in line, f"worker {name} did not start: {line!r}"
            self.workers[name] = process

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
def fleet(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
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
    for _ in range(4):
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        fleet.kill(rng.choice(sorted(fleet.workers)))
        fleet.start(f"w{generation}")
        generation += 1
    results = [await h.result(timeout=90) for h in handles]

    assert [r.status for r in results] == ["completed"] * 100
    expected_keys = []
    for handle, result in zip(handles, results):
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
