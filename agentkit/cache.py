"""A response cache: the same deterministic request is answered from a SQLite file.

``Agent(cache=ResponseCache("cache.db"))`` puts the cache in front of the agent's model.
A request is looked up by an exact match on its canonical form (the model, every
message, the tools, the settings that change the answer); only deterministic requests
are cached: a temperature of 0, or a temperature with a ``seed``. A request without a
temperature, or with a temperature above 0 and no seed, is never cached (unless
``force=True``): serving a sample again would hide the variety the caller asked for.

Hits and misses are counted in the run's usage (``usage.cache_hits``,
``usage.cache_misses``); a hit is not a model request and costs nothing. A cache file
that is not a SQLite database any more (corrupted, truncated) is rebuilt empty: the run
goes on, with a warning in the log.

This cache lives on your machine. OpenAI's server-side prompt cache is another thing:
steer it with ``ModelSettings(prompt_cache_key=...)``, which passes through this cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread

from agentkit.messages import Message, to_saved
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    closing_stream,
)
from agentkit.settings import ModelSettings
from agentkit.usage import Usage

__all__ = ["CachedModel", "ResponseCache"]

logger = logging.getLogger("agentkit")

# Settings that do not change the answer: transport details, and the server-side prompt
# cache's routing key (it only makes the server faster).
_NOT_IN_KEY = frozenset(
    {"timeout", "extra_headers", "prompt_cache_key", "max_parallel_tools", "reset_tool_choice"}
)
_SETTING_NAMES = tuple(
    f.name for f in dataclasses.fields(ModelSettings) if f.name not in _NOT_IN_KEY
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses ("
    "key TEXT PRIMARY KEY, created REAL NOT NULL, body TEXT NOT NULL)"
)
_CACHED_FINISH = frozenset({"stop", "tool_calls"})


class ResponseCache:
    """Model responses stored in a SQLite file, keyed by the exact request.

    Args:
        path: The SQLite file (created if missing). One file can serve many agents,
            models and processes.
        ttl: Seconds an entry stays valid (None: forever).
        force: Cache every request, deterministic or not (for tests and replays).

    ``hits`` and ``misses`` count this object's lookups since it was created.
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float | None = None,
                 force: bool = False) -> None:  # fmt: skip
        self.path = Path(path)
        self.ttl = ttl
        self.force = force
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, ttl={self.ttl!r}, force={self.force!r})"

    def wrap(self, model: Model) -> CachedModel:
        """``model`` with this cache in front of it."""
        return CachedModel(model, self)

    def cacheable(self, settings: ModelSettings) -> bool:
        """Whether a request with ``settings`` may be cached: a temperature of 0, or a
        temperature with a seed (or ``force``)."""
        if self.force:
            return True
        temperature = settings.temperature
        return temperature is not None and (temperature == 0 or settings.seed is not None)

    @staticmethod
    def key(model: Model, request: ModelRequest) -> str:
        """The canonical form of ``request`` to ``model``, hashed."""
        settings = request.settings
        canonical = {
            "model": [type(model).__name__, model.name, getattr(model, "base_url", None)],
            "messages": [to_saved(m) for m in request.messages],
            "tools": [t.to_openai() for t in request.tools],
            "response_format": request.response_format,
            "settings": {n: getattr(settings, n) for n in _SETTING_NAMES},
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    async def get(self, key: str) -> ModelResponse | None:
        """The stored response for ``key``, or None (missing, expired, unreadable)."""
        return await anyio.to_thread.run_sync(self._get, key)

    async def put(self, key: str, response: ModelResponse) -> None:
        """Store ``response`` under ``key``."""
        body = json.dumps(
            {
                "message": to_saved(response.message),
                "finish_reason": response.finish_reason,
                "model_name": response.model_name,
            },
            ensure_ascii=False,
        )
        await anyio.to_thread.run_sync(self._put, key, body)

    def clear(self) -> None:
        """Remove every entry."""
        self._run(lambda db: db.execute("DELETE FROM responses"), None)

    def close(self) -> None:
        """Close the file (it is opened again on the next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- storage, in worker threads -------------------------------------------------------

    def _get(self, key: str) -> ModelResponse | None:
        row = self._run(
            lambda db: db.execute(
                "SELECT created, body FROM responses WHERE key = ?", (key,)
            ).fetchone(),
            None,
        )
        if row is None:
            return None
        created, body = row
        if self.ttl is not None and time.time() - created > self.ttl:
            return None
        try:
            data = json.loads(body)
            return ModelResponse(
                message=Message.from_openai(data["message"]),
                finish_reason=str(data["finish_reason"]),
                # Not a request to the model: no tokens, no cost.
                usage=Usage(requests=0, cost_usd=0.0, cache_hits=1),
                model_name=data["model_name"],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("response cache %s: unreadable entry ignored (%s)", self.path, exc)
            return None

    def _put(self, key: str, body: str) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO responses (key, created, body) VALUES (?, ?, ?)",
                (key, time.time(), body),
            ),
            None,
        )

    def _run(self, work: Any, default: Any) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    db = self._open()
                    with db:
                        return work(db)
                except sqlite3.DatabaseError as exc:
                    # An OperationalError (locked, disk full, no permission) is not the
                    # file's fault: skip the cache this time, keep the file.
                    if attempt == 2 or isinstance(exc, sqlite3.OperationalError):
                        logger.warning("response cache %s: %s; going on without it",
                                       self.path, exc)  # fmt: skip
                        return default
                    self._rebuild(exc)
            return default

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
            except sqlite3.DatabaseError:
                db.close()
                raise
            self._db = db
        return self._db

    def _rebuild(self, exc: Exception) -> None:
        logger.warning("response cache %s is unreadable (%s); rebuilding it empty",
                       self.path, exc)  # fmt: skip
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class CachedModel(Model):
    """A model answered from a :class:`ResponseCache` when it can (see the module doc)."""

    def __init__(self, model: Model, cache: ResponseCache) -> None:
        self.wrapped = model
        self.cache = cache
        self.name = model.name
        self.supports_json_schema = model.supports_json_schema
        self.is_test_double = bool(getattr(model, "is_test_double", False))

    def __repr__(self) -> str:
        return f"CachedModel({self.wrapped!r}, {self.cache!r})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """The cached answer to ``request``, or the model's (then stored)."""
        if not self.cache.cacheable(request.settings):
            return await self.wrapped.request(request)
        key = self.cache.key(self.wrapped, request)
        hit = await self.cache.get(key)
        if hit is not None:
            self.cache.hits += 1
            return hit
        self.cache.misses += 1
        response = await self.wrapped.request(request)
        return await self._store(key, response)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream the model's answer, or the cached one (its text in one delta)."""
        if not self.cache.cacheable(request.settings):
            async with closing_stream(self.wrapped.stream(request)) as items:
                async for item in items:
                    yield item
            return
        key = self.cache.key(self.wrapped, request)
        hit = await self.cache.get(key)
        if hit is not None:
            self.cache.hits += 1
            if hit.message.text:
                yield TextDelta(hit.message.text)
            yield hit
            return
        self.cache.misses += 1
        async with closing_stream(self.wrapped.stream(request)) as items:
            async for item in items:
                if isinstance(item, ModelResponse):
                    item = await self._store(key, item)
                yield item

    async def _store(self, key: str, response: ModelResponse) -> ModelResponse:
        if response.finish_reason in _CACHED_FINISH:
            await self.cache.put(key, response)
        usage = dataclasses.replace(response.usage, cache_misses=response.usage.cache_misses + 1)
        return dataclasses.replace(response, usage=usage)
