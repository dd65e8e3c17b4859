"""Durable runs and scale-out on DBOS (extra ``durable``).

A run submitted to a :class:`DurableRunner` is a DBOS workflow whose model requests and
tool calls are steps: after a crash its worker (or another one) replays the finished
steps from their records and goes on from the step in flight. Workers are processes
(``agentkit worker module:runner``) on any number of machines sharing one Postgres.

``dbos`` is imported only when a runner submits or works, so importing this package is
cheap.
"""

from __future__ import annotations

from agentkit.durable.runner import DurableRunner, RunHandle

__all__ = ["DurableRunner", "RunHandle"]
