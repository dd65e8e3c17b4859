"""Record the model traffic of a block of code to a JSONL file, and replay it offline later.

The cassette is a model wrapper (:mod:`agentkit.models.wrapping`): its
:meth:`~Cassette.wrap_model` puts a recording or replaying model in front of each run's
model, at one of two levels:

* **HTTP** for models with a ``with_transport(transport, needs_key=...)`` method
  (``OpenAIChatModel``): the run uses a copy of the model whose HTTP goes through the
  cassette, and every exchange is stored (status, headers, body; streamed bodies chunk by
  chunk, and connection errors), so retries and streaming replay exactly as they happened.
  Replaying needs no API key.
* **Model** for every other :class:`~agentkit.models.Model`: each
  ``ModelRequest``/``ModelResponse`` pair is stored.

A recording in which a model request failed (after its retries) is not written, so a
broken run never replaces a good cassette.

A replayed request must equal a recorded one (model-level: the canonical JSON of
messages, tools, settings and response format; HTTP-level: method, path and JSON body).
Otherwise :class:`~agentkit.errors.CassetteMismatch` shows a unified diff against the
closest recorded request. Authorization headers, API keys, organization/project ids and
cookies are never written.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import json
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx2

from agentkit._secrets import redact
from agentkit.errors import CassetteMismatch, ConfigurationError
from agentkit.messages import Message, to_openai
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    closing_stream,
)
from agentkit.models.wrapping import wrapping_models
from agentkit.settings import ModelSettings
from agentkit.usage import Usage

ClientT = TypeVar("ClientT")

__all__ = ["Cassette", "CassetteMode", "cassette"]

logger = logging.getLogger("agentkit")

CassetteMode = Literal["once", "replay", "record"]
_MODES = ("once", "replay", "record")
_FORMAT_VERSION = 1

_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "openai-organization",
        "openai-project",
        "cookie",
        "set-cookie",
    }
)
_SAFE_REQUEST_HEADERS = frozenset(
    {"accept", "accept-encoding", "content-type", "user-agent", "openai-beta"}
)


def cassette(path: str | os.PathLike[str], mode: CassetteMode = "once") -> Cassette:
    """A context manager recording or replaying the model traffic of the runs inside it.

    Args:
        path: The JSONL file.
        mode: ``"once"`` replays ``path`` if it exists and records it otherwise;
            ``"replay"`` requires the file and never calls a model; ``"record"`` calls the
            real models and (over)writes the file when the block ends.

    >>> with cassette("tests/cassettes/weather.jsonl"):
    ...     result = agent.run_sync("Weather in Paris?")
    """
    return Cassette(path, mode)


class Cassette:
    """Records or replays model traffic; use it through :func:`cassette`.

    Attributes:
        path: The JSONL file.
        mode: The mode it was opened with.
        recording: True when calling real models and writing the file, False when
            replaying.
        interactions: The recorded interactions (loaded, or recorded so far).
        failed: True once a model request made through the cassette failed; a recording
            is then not written.
    """

    def __init__(self, path: str | os.PathLike[str], mode: CassetteMode = "once") -> None:
        if mode not in _MODES:
            raise ConfigurationError(
                f"cassette mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}"
            )
        self.path = Path(path)
        self.mode: CassetteMode = mode
        exists = self.path.exists()
        if mode == "replay" and not exists:
            raise ConfigurationError(
                f"cassette {str(self.path)!r} does not exist, so there is nothing to replay; "
                "record it first with mode='record' (or 'once'), or run pytest with "
                "--agentkit-record"
            )
        self.recording = mode == "record" or (mode == "once" and not exists)
        self.interactions: list[dict[str, Any]] = [] if self.recording else _load(self.path)
        self._used = [False] * len(self.interactions)
        # A model-level recording of an HTTP-level model still replays at the model level.
        self._has_http = any(i.get("kind") == "http" for i in self.interactions)
        self._lock = threading.Lock()
        self._wrapping: Any = None
        self.failed = False

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r}, recording={self.recording})"

    @property
    def unplayed(self) -> int:
        """How many recorded interactions have not been replayed (0 when recording)."""
        return self._used.count(False)

    # --- context manager --------------------------------------------------------------

    def __enter__(self) -> Cassette:
        self._wrapping = wrapping_models(self.wrap_model)
        self._wrapping.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._wrapping is not None:
            self._wrapping.__exit__(exc_type, exc, tb)
            self._wrapping = None
        if self.recording and self.failed:
            logger.warning(
                "agentkit: cassette %s was not written: a model request inside it failed "
                "(see the error raised); fix it and record again", self.path,
            )
        elif self.recording:
            self.save()

    async def __aenter__(self) -> Cassette:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def save(self) -> None:
        """Write the recorded interactions to :attr:`path` (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"agentkit_cassette": _FORMAT_VERSION})]
        lines += [json.dumps(i, ensure_ascii=False, sort_keys=True) for i in self.interactions]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)
        logger.info(
            "agentkit: cassette %s: recorded %d interaction(s)", self.path, len(self.interactions)
        )

    # --- model level ------------------------------------------------------------------

    def wrap_model(self, model: Model) -> Model:
        """The run's model seen through this cassette (see the module docstring)."""
        return _CassetteModel(self, model)

    def wrap_client(self, client: ClientT) -> ClientT:
        """``client`` (an ``OpenAIEmbedder``, ``OpenAIModeration`` or OpenAI model: anything
        with ``with_transport``) with its HTTP requests recorded to or replayed from this
        cassette, e.g. ``embedder = tape.wrap_client(OpenAIEmbedder(...))``."""
        with_transport = getattr(client, "with_transport", None)
        if not callable(with_transport):
            raise ConfigurationError(
                f"cassette.wrap_client() needs a client with with_transport(), such as "
                f"OpenAIEmbedder or OpenAIModeration; got {type(client).__name__}"
            )
        wrapped: ClientT = with_transport(_CassetteTransport(self), needs_key=self.recording)
        return wrapped

    def replay(self, model: Model, request: ModelRequest) -> ModelResponse:
        """The recorded model-level response to ``request``."""
        key = model_request_key(model, request)
        return _load_response(self._take("model", key, f"request to model {model.name!r}")[
            "response"])

    def record(self, model: Model, request: ModelRequest, response: ModelResponse) -> None:
        """Record a model-level interaction."""
        entry = {
            "kind": "model",
            "request": model_request_key(model, request),
            "response": _dump_response(response),
        }
        with self._lock:
            self.interactions.append(entry)

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Mark the cassette :attr:`failed` if the block (a model request) raises."""
        try:
            yield
        except Exception:
            self.failed = True
            raise

    # --- HTTP level -------------------------------------------------------------------

    async def handle_http(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one HTTP request: from the file when replaying, else from the server."""
        key = await _http_request_key(request)
        if not self.recording:
            entry = self._take("http", key, f"HTTP {request.method} {key['path']}")
            return _replay_http(entry["response"], request)
        secrets = _request_secrets(request)
        request.headers["accept-encoding"] = "identity"  # keep stored bodies readable
        # A transport per exchange: the body is read completely here, and no pooled
        # connection outlives the event loop that opened it.
        async with httpx2.AsyncHTTPTransport() as transport:
            recorded = await _exchange(transport, request, secrets)
        self._append_http(request, key, recorded, secrets)
        if "status" not in recorded:
            raise _transport_error(recorded["error"], recorded["message"], request)
        return _replay_http(recorded, request)

    def _append_http(
        self,
        request: httpx2.Request,
        key: dict[str, Any],
        response: dict[str, Any],
        secrets: list[str],
    ) -> None:
        # Request headers are kept only from an allowlist: a credential can travel in any
        # custom header (default_headers), and none of them is needed to replay.
        headers = {
            k: redact(v, secrets)
            for k, v in request.headers.items()
            if k.lower() in _SAFE_REQUEST_HEADERS or k.lower().startswith("x-stainless-")
        }
        stored_key = json.loads(redact(json.dumps(key), secrets))
        entry = {
            "kind": "http",
            "request": {**stored_key, "headers": headers},
            "response": response,
        }
        with self._lock:
            self.interactions.append(entry)

    # --- matching ---------------------------------------------------------------------

    def _take(self, kind: str, key: dict[str, Any], what: str) -> dict[str, Any]:
        """The first unplayed interaction of ``kind`` whose request equals ``key``."""
        with self._lock:
            candidates = [
                i
                for i, entry in enumerate(self.interactions)
                if not self._used[i] and entry.get("kind") == kind
            ]
            for index in candidates:
                if _comparable(self.interactions[index]["request"]) == key:
                    self._used[index] = True
                    return self.interactions[index]
        recorded = sum(1 for e in self.interactions if e.get("kind") == kind)
        if not candidates:
            raise CassetteMismatch(
                f"{what} is not in cassette {str(self.path)!r}: all {recorded} recorded "
                f"{kind}-level request(s) have been replayed already. Re-record with "
                "cassette(..., mode='record') or pytest --agentkit-record."
            )
        closest = _comparable(self.interactions[candidates[0]]["request"])
        diff = _diff(closest, key)
        raise CassetteMismatch(
            f"{what} does not match cassette {str(self.path)!r} (replaying; "
            f"{len(candidates)} of {recorded} recorded request(s) left). Difference from "
            f"the next recorded request (- recorded, + actual):\n{diff}\n"
            "If the change is intended, re-record with cassette(..., mode='record') or "
            "pytest --agentkit-record."
        )


# --- model-level serialisation ---------------------------------------------------------


def model_request_key(model: Model, request: ModelRequest) -> dict[str, Any]:
    """The canonical JSON form of a model request, which replay compares."""
    defaults = ModelSettings()
    settings = {
        f.name: getattr(request.settings, f.name)
        for f in dataclasses.fields(ModelSettings)
        if getattr(request.settings, f.name) != getattr(defaults, f.name)
        and f.name != "extra_headers"  # headers may carry credentials
    }
    key = {
        "model": model.name,
        "messages": to_openai(request.messages),
        "tools": [tool.to_openai() for tool in request.tools],
        "settings": settings,
        "response_format": request.response_format,
    }
    # Round-trip so tuples become lists, exactly as the file will hold them.
    loaded: dict[str, Any] = json.loads(json.dumps(key, default=str))
    return loaded


def _dump_response(response: ModelResponse) -> dict[str, Any]:
    return {
        "message": response.message.to_openai(),
        "finish_reason": response.finish_reason,
        "usage": dataclasses.asdict(response.usage),
        "model_name": response.model_name,
    }


def _load_response(data: dict[str, Any]) -> ModelResponse:
    return ModelResponse(
        message=Message.from_openai(data["message"]),
        finish_reason=data.get("finish_reason", "stop"),
        usage=Usage(**data.get("usage", {"requests": 1})),
        model_name=data.get("model_name"),
    )


def _comparable(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "headers"}


def _diff(recorded: Any, actual: Any) -> str:
    old = json.dumps(recorded, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    new = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(
        difflib.unified_diff(old, new, fromfile="recorded", tofile="actual", lineterm="")
    )


def _load(path: Path) -> list[dict[str, Any]]:
    interactions: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise ConfigurationError(
                    f"cassette {str(path)!r} line {number} is not JSON ({exc}); re-record it"
                ) from exc
            if "agentkit_cassette" in entry:
                continue
            interactions.append(entry)
    return interactions


# --- HTTP-level serialisation ----------------------------------------------------------


async def _http_request_key(request: httpx2.Request) -> dict[str, Any]:
    raw = await request.aread()
    text = raw.decode("utf-8", "replace")
    body: Any
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text
    return {
        "method": request.method,
        "path": request.url.raw_path.decode("ascii", "replace"),
        "body": body,
    }


async def _exchange(
    transport: httpx2.AsyncBaseTransport, request: httpx2.Request, secrets: list[str]
) -> dict[str, Any]:
    """Send ``request`` and read the whole answer, keeping a connection error as data."""
    try:
        response = await transport.handle_async_request(request)
    except httpx2.TransportError as exc:
        return {"error": type(exc).__name__, "message": redact(str(exc), secrets)}
    chunks: list[bytes] = []
    try:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    except httpx2.TransportError as exc:
        recorded = _http_response(response, chunks, secrets)
        recorded["error"] = type(exc).__name__
        recorded["message"] = redact(str(exc), secrets)
        return recorded
    finally:
        await response.aclose()
    return _http_response(response, chunks, secrets)


def _request_secrets(request: httpx2.Request) -> list[str]:
    secrets = []
    for name in ("authorization", "api-key", "x-api-key"):
        value = request.headers.get(name)
        if value:
            token = value.split(" ", 1)[-1].strip()
            if len(token) >= 4:
                secrets.append(token)
    return secrets


def _http_response(
    response: httpx2.Response, chunks: list[bytes], secrets: list[str]
) -> dict[str, Any]:
    headers = {
        k: redact(v, secrets)
        for k, v in response.headers.items()
        if k.lower() not in _SECRET_HEADERS and k.lower() != "content-length"
    }
    return {
        "status": response.status_code,
        "headers": headers,
        "chunks": [_encode_chunk(chunk, secrets) for chunk in chunks],
    }


def _encode_chunk(chunk: bytes, secrets: list[str]) -> str | dict[str, str]:
    try:
        return redact(chunk.decode("utf-8"), secrets)
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(chunk).decode("ascii")}


def _decode_chunk(chunk: str | dict[str, str]) -> bytes:
    if isinstance(chunk, dict):
        return base64.b64decode(chunk["base64"])
    return chunk.encode("utf-8")


def _transport_error(name: str, message: str, request: httpx2.Request) -> Exception:
    kind = getattr(httpx2, name, None)
    if not (isinstance(kind, type) and issubclass(kind, httpx2.TransportError)):
        kind = httpx2.TransportError
    error: Exception = kind(message, request=request)
    return error


def _replay_http(recorded: dict[str, Any], request: httpx2.Request) -> httpx2.Response:
    if "status" not in recorded:  # the connection failed before any response
        raise _transport_error(recorded["error"], recorded.get("message", ""), request)
    chunks = [_decode_chunk(c) for c in recorded.get("chunks", [])]
    error = recorded.get("error")

    class _Stream(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            if error is not None:  # the connection dropped mid-body when recorded
                raise _transport_error(error, recorded.get("message", ""), request)

    return httpx2.Response(
        recorded["status"], headers=recorded.get("headers"), stream=_Stream(), request=request
    )


class _CassetteTransport(httpx2.AsyncBaseTransport):
    """Sends every request through the owning cassette."""

    def __init__(self, owner: Cassette) -> None:
        self.owner = owner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.owner.handle_http(request)


class _CassetteModel(Model):
    """A run's model seen through a cassette: replays, or calls the model and records."""

    #: Tells ``block_model_requests`` that requests here are replayed or deliberately
    #: recorded.
    allows_model_requests = True

    def __init__(self, cassette: Cassette, model: Model) -> None:
        self.cassette = cassette
        self.model = self.wrapped = model
        self.name = model.name
        self.supports_json_schema = model.supports_json_schema
        with_transport = getattr(model, "with_transport", None)
        # A model-level recording of an HTTP-level model still replays at the model level.
        self.http: Model | None = None
        if callable(with_transport) and (cassette.recording or cassette._has_http):
            transport = _CassetteTransport(cassette)
            self.http = with_transport(transport, needs_key=cassette.recording)
        self.replays = self.http is None and not cassette.recording

    async def request(self, request: ModelRequest) -> ModelResponse:
        if self.replays:
            return self.cassette.replay(self.model, request)
        with self.cassette.watch():
            response = await (self.http or self.model).request(request)
        if self.http is None:
            self.cassette.record(self.model, request, response)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        if self.replays:
            response = self.cassette.replay(self.model, request)
            if response.message.text:
                yield TextDelta(response.message.text)
            yield response
            return
        with self.cassette.watch():
            async with closing_stream((self.http or self.model).stream(request)) as items:
                async for item in items:
                    if isinstance(item, ModelResponse) and self.http is None:
                        self.cassette.record(self.model, request, item)
                    yield item
