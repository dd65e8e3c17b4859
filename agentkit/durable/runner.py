"""DurableRunner: submit runs from anywhere; workers run them, surviving crashes.

A submitted run is a row in the thread store (status ``queued``) and a DBOS workflow of
the same id on a DBOS queue, in the same database. Any worker process (``agentkit worker
module:runner``, or :meth:`DurableRunner.start` in a process of yours) takes it from the
queue and runs it; see :mod:`agentkit.durable._workflow` for what is recorded, and
:mod:`agentkit.durable._fleet` for how a dead worker's runs move to the live ones.

The submitting side needs no worker: it talks to the database through a ``DBOSClient``
and reads results from the thread store.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from agentkit.errors import (
    ConfigurationError,
    IdempotencyConflict,
    RunError,
    RunStatusError,
    RunTimeout,
)
from agentkit.messages import Message, to_saved
from agentkit.run import RunResult, RunState, RunStatus
from agentkit.threads import RunRecord, Store

if TYPE_CHECKING:
    from dbos import DBOSClient

    from agentkit.agent import Agent
    from agentkit.durable._fleet import Fleet

__all__ = ["DurableRunner", "RunHandle"]

logger = logging.getLogger("agentkit")

_ENDED: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "incomplete", "expired"}
)


@dataclasses.dataclass(frozen=True, slots=True)
class RunHandle:
    """A submitted durable run. Every method reads the shared database, so a handle made
    in one process (or rebuilt with :meth:`DurableRunner.handle`) works in any other.

    Attributes:
        run_id: The run's id (in the thread store, and the DBOS workflow id).
    """

    runner: DurableRunner
    run_id: str
    # The run's saved state when the handle was made by a resume: a result() that sees
    # the run still waiting with that state knows the decisions are not applied yet.
    after: str | None = None

    async def status(self) -> RunStatus:
        """The run's current status (``queued``, ``in_progress``, ``requires_action``…)."""
        return (await self.runner.store.get_run(self.run_id)).status

    async def record(self) -> RunRecord:
        """The run's record in the thread store."""
        return await self.runner.store.get_run(self.run_id)

    async def result(self, timeout: float | None = None) -> RunResult[Any]:
        """Wait until the run completes, is cancelled or waits for a person
        (``requires_action``: resume it with :meth:`DurableRunner.resume`), and return it.

        Raises:
            RunTimeout: ``timeout`` seconds passed first (the run goes on).
            RunError: the run failed; the message says why.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            record = await self.runner.store.get_run(self.run_id)
            waiting = record.status == "requires_action" and record.state != self.after
            if record.status in _ENDED or waiting:
                return await self.runner._result(record)
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeout(
                    f"run {self.run_id} is still {record.status} after {timeout:g}s; it goes "
                    "on: call result() again (are workers running? `agentkit worker "
                    "module:runner`)"
                )
            left = None if deadline is None else deadline - time.monotonic()
            await anyio.sleep(pause if left is None else max(min(pause, left), 0))
            pause = min(pause * 2, 0.25)


class DurableRunner:
    """Runs agents durably on DBOS, in worker processes that share one database.

    Args:
        store: The thread store runs write to. A
            :class:`~agentkit.threads.PostgresStore` lets any number of workers on any
            number of machines share the work (DBOS keeps its tables in the same
            database, schema ``dbos``); a :class:`~agentkit.threads.SQLiteStore` suits one
            machine and one worker (DBOS then uses ``<store file>-dbos.sqlite``).
        agents: The agents runs may use, by the name :meth:`submit` takes. Every worker
            must have the same agents.
        queue: The DBOS queue runs go through.
        concurrency: The most runs in progress at once over the whole fleet (None: no
            limit).
        worker_concurrency: The most runs in progress at once in one worker.
        runs_per_minute: The most runs started per minute over the whole fleet (a DBOS
            queue rate limit; None: no limit).
        app_version: The DBOS application version, pinned: a worker only takes runs of
            its own version, so a code change cannot replay a run with different steps.
            Change it when a change to the agents or agentkit changes the sequence of
            steps of a run in flight; see the docs page on upgrades.
        name: The DBOS application name (one database can serve several).
        system_database_url: Where DBOS keeps its state, if not next to the store.
        heartbeat: Seconds between two heartbeats of a worker (Postgres only).
        dead_after: Seconds without a heartbeat after which a worker is taken for dead and
            its runs are adopted by the others.
        poll_interval: Seconds between two looks of a worker at the queue.
    """

    def __init__(
        self,
        store: Store,
        agents: Mapping[str, Agent[Any]],
        *,
        queue: str = "agents",
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        runs_per_minute: int | None = None,
        app_version: str = "1",
        name: str = "agentkit",
        system_database_url: str | None = None,
        heartbeat: float = 2.0,
        dead_after: float = 10.0,
        poll_interval: float = 0.1,
    ) -> None:
        if not agents:
            raise ConfigurationError(
                "DurableRunner needs at least one agent: agents={'name': agent}"
            )
        if dead_after < 2 * heartbeat:
            raise ConfigurationError(
                f"dead_after={dead_after:g} must be at least twice heartbeat={heartbeat:g}, "
                "or a worker that is merely slow would be taken for dead"
            )
        self.store = store
        self.agents = dict(agents)
        self.queue = queue
        self.concurrency = concurrency
        self.worker_concurrency = worker_concurrency
        self.runs_per_minute = runs_per_minute
        self.app_version = app_version
        self.name = name
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.poll_interval = poll_interval
        self.system_database_url = system_database_url or _system_url(store)
        self.executor_id: str | None = None
        self._client_field: DBOSClient | None = None
        self._client_lock = threading.Lock()
        self._worker_store: Store | None = None
        self._fleet: Fleet | None = None
        self._started = False

    def __repr__(self) -> str:
        return (
            f"DurableRunner(store={self.store!r}, agents={sorted(self.agents)}, "
            f"queue={self.queue!r})"
        )

    # --- submitting ---------------------------------------------------------------------

    async def submit(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        *,
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """Queue a run of ``agent`` on ``thread`` (a new thread when None).

        The same ``idempotency_key`` submitted again, from any process, returns the same
        run; with another agent, thread or input it raises
        :class:`~agentkit.errors.IdempotencyConflict`.
        """
        if agent not in self.agents:
            raise ConfigurationError(
                f"no agent named {agent!r} in this runner; known: {', '.join(sorted(self.agents))}"
            )
        messages = [Message.user(input)] if isinstance(input, str) else (
            [input] if isinstance(input, Message) else list(input)
        )
        saved = [to_saved(m) for m in messages]
        client = await self._client()
        made = None
        if thread is None:
            made = thread = (await self.store.create_thread()).id
        record = await self.store.create_run(
            thread, agent, status="queued", lease=None, idempotency_key=idempotency_key
        )
        if made is not None and record.thread_id != made:
            await self.store.delete_thread(made)  # the key's run lives on another thread
            thread = record.thread_id
        if record.thread_id != thread or record.agent != agent:
            raise self._conflict(idempotency_key, record, "agent or thread")
        from dbos import EnqueueOptions

        from agentkit.durable._workflow import WORKFLOW

        options: EnqueueOptions = {
            "queue_name": self.queue,
            "workflow_name": WORKFLOW,
            "workflow_id": record.id,
            "app_version": self.app_version,
        }
        await client.enqueue_async(options, agent, thread, saved)
        if idempotency_key is not None:
            # The first enqueue of an id wins; a second one with other input is refused.
            existing = await client.list_workflows_async(workflow_ids=[record.id])
            inputs = existing[0].input if existing else None
            given = inputs["args"] if inputs else None
            if given is not None and list(given) != [agent, thread, saved]:
                raise self._conflict(idempotency_key, record, "input")
        return RunHandle(self, record.id)

    def _conflict(self, key: str | None, record: RunRecord, what: str) -> IdempotencyConflict:
        return IdempotencyConflict(
            f"idempotency key {key!r} was already used for run {record.id} (agent "
            f"{record.agent!r}, thread {record.thread_id}) with another {what}; use a new "
            "key for a new run, or the same arguments to get the same run",
            key=str(key), run_id=record.id,
        )  # fmt: skip

    def handle(self, run_id: str) -> RunHandle:
        """A handle on a run submitted earlier (by any process)."""
        return RunHandle(self, run_id)

    async def resume(
        self,
        run_id: str,
        *,
        approve: Sequence[str] = (),
        reject: Mapping[str, str] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Send decisions to a run waiting with ``requires_action``, from any process; the
        run goes on in whichever worker holds it (or adopts it). The decisions are checked
        here first: a call the run does not wait for raises
        :class:`~agentkit.errors.NotPending`, a run that does not wait
        :class:`~agentkit.errors.RunStatusError`."""
        record = await self.store.get_run(run_id)
        if record.status != "requires_action" or record.state is None:
            raise RunStatusError(
                f"run {run_id!r} is {record.status}, not waiting (requires_action); only a "
                "waiting run takes decisions",
                run_id=run_id, status=record.status,
            )  # fmt: skip
        RunState.from_json(record.state).decide(approve, reject, outputs)  # checks only
        decisions = {
            "approve": list(approve), "reject": dict(reject or {}), "outputs": dict(outputs or {}),
        }  # fmt: skip
        from agentkit.durable._workflow import DECISION_TOPIC

        client = await self._client()
        await client.send_async(run_id, decisions, DECISION_TOPIC)
        return RunHandle(self, run_id, after=record.state)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: a queued or waiting run at once, a running one at its next step
        (it ends ``cancelled``). A run already ended raises
        :class:`~agentkit.errors.RunStatusError`."""
        record = await self.store.cancel_run(run_id)
        from agentkit.durable._workflow import DECISION_TOPIC

        client = await self._client()
        try:
            await client.send_async(run_id, {"cancel": True}, DECISION_TOPIC)
        except Exception as exc:  # no workflow (yet): the record's status is enough
            logger.debug("run %s: no workflow to wake for the cancel: %s", run_id, exc)
        return record

    async def _result(self, record: RunRecord) -> RunResult[Any]:
        if record.status in ("failed", "expired", "incomplete"):
            raise RunError(
                f"durable run {record.id} {record.status}: "
                f"{record.error or 'no error recorded'}"
            )
        messages = await self.store.messages(record.thread_id)
        state = RunState.from_json(record.state) if record.state else RunState()
        state.messages = messages
        output: Any = None
        if record.status == "completed" and state.final is not None:
            spec = self.agents[record.agent]._output
            output = spec.validate_json(state.final) if spec is not None else state.final
        return RunResult(
            output=output,
            messages=messages,
            usage=record.usage,
            turns=state.turn,
            new_message_index=state.new_message_index,
            state=state,
            status=record.status,
            pending=list(record.pending),
            run_id=record.id,
        )

    async def _client(self) -> DBOSClient:
        if self._client_field is None:
            await anyio.to_thread.run_sync(self._make_client)
        assert self._client_field is not None
        return self._client_field

    def _make_client(self) -> None:
        with self._client_lock:
            if self._client_field is not None:
                return
            try:
                from dbos import DBOS, DBOSClient
            except ImportError:
                raise ConfigurationError(
                    "durable runs need DBOS: pip install 'agentkit[durable]'"
                ) from None
            DBOS.migrate(self.system_database_url)  # a client alone does not create it
            self._client_field = DBOSClient(
                system_database_url=self.system_database_url, application_name=self.name
            )

    # --- working ------------------------------------------------------------------------

    def worker_store(self) -> Store:
        """The store workflows use: the runner's own, or for Postgres a second one, since
        a pool belongs to one event loop and DBOS runs workflows in its own loop."""
        if self._worker_store is None:
            from agentkit.threads import SQLiteStore

            if isinstance(self.store, SQLiteStore):
                self._worker_store = self.store
            else:
                from agentkit.threads.postgres import PostgresStore

                assert isinstance(self.store, PostgresStore)
                self._worker_store = PostgresStore(
                    self.store._dsn, max_size=self.store.max_size, timeout=self.store.timeout
                )
        return self._worker_store

    def start_worker(
        self, *, concurrency: int | None = None, executor_id: str | None = None
    ) -> None:
        """Make this process a worker (blocking until DBOS is up; call from sync code, or
        use :meth:`start` in async code). One runner per process can work."""
        try:
            from dbos import DBOS, DBOSConfig
        except ImportError:
            raise ConfigurationError(
                "durable runs need DBOS: pip install 'agentkit[durable]'"
            ) from None
        from agentkit.durable import _workflow

        if self._started:
            return
        postgres = not self.system_database_url.startswith("sqlite")
        # On Postgres every process is its own executor and failover moves its runs; on
        # SQLite (one machine) a restarted worker takes its runs back under the same id.
        self.executor_id = executor_id or (
            f"{os.uname().nodename}-{uuid.uuid4().hex[:12]}" if postgres else "local"
        )
        config: DBOSConfig = {
            "name": self.name,
            "system_database_url": self.system_database_url,
            "application_version": self.app_version,
            "executor_id": self.executor_id,
            "log_level": os.environ.get("AGENTKIT_DBOS_LOG_LEVEL", "WARNING"),
            # Fewer wake-ups of DBOS's notifier thread (it bounds how soon a resume's
            # message wakes a waiting run).
            "notification_coalesce_sec": 0.05,
        }
        _workflow.bind(self)
        DBOS.migrate(self.system_database_url)
        if postgres:
            from agentkit.durable._fleet import Fleet

            self._fleet = Fleet(
                _psycopg_dsn(self.system_database_url), self.executor_id, self.app_version,
                self.queue, heartbeat=self.heartbeat, dead_after=self.dead_after,
            )  # fmt: skip
            # Alive in the table before DBOS may hand this worker a run.
            self._fleet.start()
        DBOS(config=config)
        DBOS.launch()
        limiter = None if self.runs_per_minute is None else {
            "limit": self.runs_per_minute, "period": 60.0,
        }  # fmt: skip
        DBOS.register_queue(
            self.queue,
            worker_concurrency=concurrency or self.worker_concurrency,
            global_concurrency=self.concurrency,
            limiter=limiter,  # type: ignore[arg-type]
            polling_interval_sec=self.poll_interval,
            on_conflict="always_update",
        )
        self._started = True
        logger.info("durable worker %s working on queue %r", self.executor_id, self.queue)

    def stop_worker(self, *, grace: int = 0) -> None:
        """Stop working here. Runs still in progress are handed to the other workers (at
        their next heartbeat check) or taken back by this worker when it starts again."""
        if not self._started:
            return
        from dbos import DBOS

        DBOS.destroy(workflow_completion_timeout_sec=grace)
        if self._fleet is not None:
            self._fleet.stop()
            self._fleet = None
        self._started = False

    async def start(
        self, *, concurrency: int | None = None, executor_id: str | None = None
    ) -> None:
        """Make this process a worker too (async code: DBOS starts in a thread)."""
        await anyio.to_thread.run_sync(
            lambda: self.start_worker(concurrency=concurrency, executor_id=executor_id)
        )

    async def stop(self) -> None:
        """Stop this process's worker, if it started one."""
        await anyio.to_thread.run_sync(self.stop_worker)

    async def close(self) -> None:
        """Stop the worker (if any) and release the runner's connections."""
        await self.stop()
        client, self._client_field = self._client_field, None
        if client is not None:
            await anyio.to_thread.run_sync(client.destroy)
        await self.store.close()

    async def __aenter__(self) -> DurableRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def serve(self, *, concurrency: int | None = None, executor_id: str | None = None) -> None:
        """Work until SIGTERM or SIGINT (what ``agentkit worker`` runs)."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start_worker(concurrency=concurrency, executor_id=executor_id)
        print(
            f"agentkit worker {self.executor_id}: queue {self.queue!r}, agents "
            f"{', '.join(sorted(self.agents))}, version {self.app_version}; Ctrl-C stops",
            flush=True,
        )
        stop.wait()
        self.stop_worker()


def _system_url(store: Store) -> str:
    from agentkit.threads import SQLiteStore

    if isinstance(store, SQLiteStore):
        if store.path == ":memory:":
            raise ConfigurationError(
                "durable runs need a store other processes can open: use a SQLite file or "
                "PostgresStore, not ':memory:'"
            )
        return f"sqlite:///{os.path.abspath(store.path)}-dbos.sqlite"
    dsn = getattr(store, "_dsn", None)
    if not isinstance(dsn, str):
        raise ConfigurationError(
            f"DurableRunner works with SQLiteStore or PostgresStore, got {type(store).__name__}; "
            "or pass system_database_url="
        )
    return dsn


def _psycopg_dsn(url: str) -> str:
    # A SQLAlchemy URL may name its driver (postgresql+psycopg://); libpq does not.
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"

