"""Failover between workers: heartbeats in a table, and adoption of a dead worker's runs.

DBOS recovers a worker's own unfinished workflows when that worker starts again with the
same executor id. It does not move them to another worker when a machine is gone (its
hosted service does that). This module closes the gap with DBOS's public API:

- every worker writes a heartbeat row (``agentkit_workers``) every ``heartbeat`` seconds,
  timed by the database's clock, so machines' clocks do not matter;
- every worker looks for rows older than ``dead_after`` seconds. It locks them (``FOR
  UPDATE SKIP LOCKED``: one adopter at a time), marks them adopted, and puts each
  unfinished workflow of those workers back on the queue (``DBOS.resume_workflow``),
  where any live worker of the same version takes it and replays it from its recorded
  steps. Adopted workers stay in the table for a while and are looked at again on every
  check, so a run a worker took just before it stopped is not left behind either;
- a worker that finds itself marked adopted was taken for dead (a pause longer than
  ``dead_after``): its runs now belong to others, so it stops at once rather than run
  them alongside.

A dead worker's runs are back on the queue ``dead_after`` to ``dead_after + heartbeat``
seconds after its last heartbeat.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Fleet"]

logger = logging.getLogger("agentkit")

_SCHEMA = """CREATE TABLE IF NOT EXISTS agentkit_workers (
    executor_id TEXT PRIMARY KEY,
    app_version TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    beat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    adopted_at TIMESTAMPTZ)"""
# How long an adopted worker is still looked at (a run it took at the last moment).
_FORGET_AFTER = "1 hour"


class Fleet:
    """This worker's heartbeat and its watch over the others (one daemon thread)."""

    def __init__(
        self,
        dsn: str,
        executor_id: str,
        app_version: str,
        queue: str,
        *,
        heartbeat: float,
        dead_after: float,
        on_fenced: Callable[[], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.executor_id = executor_id
        self.app_version = app_version
        self.queue = queue
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.on_fenced = on_fenced or _exit_now
        self.adopted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the first heartbeat (before any run starts here), then keep beating."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            # Two workers starting at once must not both create the table.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7346102156)")
                conn.execute(_SCHEMA)
            conn.execute(
                "INSERT INTO agentkit_workers (executor_id, app_version) VALUES (%s, %s) "
                "ON CONFLICT (executor_id) DO UPDATE SET beat_at = now(), adopted_at = NULL",
                (self.executor_id, self.app_version),
            )
        self._thread = threading.Thread(target=self._loop, name="agentkit-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating, and mark this worker's row as long dead: the others adopt what it
        leaves unfinished at their next check instead of ``dead_after`` later."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE agentkit_workers SET beat_at = 'epoch' WHERE executor_id = %s",
                    (self.executor_id,),
                )
        except psycopg.Error as exc:
            logger.warning("worker %s: could not remove its heartbeat: %s", self.executor_id, exc)

    def _loop(self) -> None:
        import psycopg

        conn: Any = None
        while not self._stop.wait(self.heartbeat):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                if not self._beat(conn):
                    logger.error(
                        "worker %s: another worker adopted its runs (no heartbeat for %.0fs): "
                        "stopping now so that no run goes on in two places",
                        self.executor_id, self.dead_after,
                    )
                    self.on_fenced()
                    return
                self._adopt(conn)
            except Exception as exc:  # the database, or DBOS not launched yet: next time
                logger.warning("worker %s: heartbeat failed: %s", self.executor_id, exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _beat(self, conn: Any) -> bool:
        rows = conn.execute(
            "UPDATE agentkit_workers SET beat_at = now() WHERE executor_id = %s "
            "AND adopted_at IS NULL RETURNING 1",
            (self.executor_id,),
        ).fetchall()
        return bool(rows)

    def _adopt(self, conn: Any) -> None:
        from dbos import DBOS

        with conn.transaction():
            rows = conn.execute(
                "SELECT executor_id, adopted_at IS NULL FROM agentkit_workers "
                "WHERE executor_id <> %s AND beat_at < now() - make_interval(secs => %s) "
                "FOR UPDATE SKIP LOCKED",
                (self.executor_id, self.dead_after),
            ).fetchall()
            if not rows:
                return
            dead = [executor for executor, _ in rows]
            pending = DBOS.list_workflows(
                status="PENDING", executor_id=dead, load_input=False, load_output=False
            )
            for workflow in pending:
                # Back on the queue: a live worker of the same version takes it and replays
                # it from its recorded steps.
                DBOS.resume_workflow(workflow.workflow_id, queue_name=self.queue)
            self.adopted += len(pending)
            newly = [executor for executor, fresh in rows if fresh]
            if pending or newly:
                logger.warning(
                    "worker %s: worker(s) %s stopped beating; %d of their runs are back on "
                    "queue %r", self.executor_id, ", ".join(dead), len(pending), self.queue,
                )
            conn.execute(
                "UPDATE agentkit_workers SET adopted_at = now() WHERE executor_id = ANY(%s) "
                "AND adopted_at IS NULL",
                (newly,),
            )
            conn.execute(
                "DELETE FROM agentkit_workers WHERE adopted_at < now() - "
                f"interval '{_FORGET_AFTER}'"
            )


def _exit_now() -> None:
    # Not sys.exit: a thread cannot stop the process that way, and a clean shutdown would
    # wait for the very runs that must not go on.
    os._exit(75)
