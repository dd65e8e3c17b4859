"""OpenAIChatModel: the chat-completions API of OpenAI and of any compatible server.

Requests go through the official ``openai`` client (built with ``max_retries=0``: retries
belong to :class:`~agentkit.retry.RetryPolicy`, so nothing retries twice), using its raw
response so the JSON is read straight into agentkit's types. ``openai`` is imported on
first use, never by ``import agentkit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sys
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from agentkit._secrets import redact
from agentkit.errors import (
    AuthenticationError,
    ContextLengthExceeded,
    MissingAPIKey,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelNotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
)
from agentkit.models._openai_wire import (
    MalformedResponse,
    StreamMerger,
    build_body,
    estimate_tokens,
    parse_completion,
)
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem, TextDelta
from agentkit.retry import (
    RateLimit,
    Reservation,
    RetryPolicy,
    TransientError,
    parse_retry_after,
)

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIChatModel", "hash_user_id"]

logger = logging.getLogger("agentkit")

_OPENAI_HOST = "api.openai.com"
_LOCAL_PLACEHOLDER_KEY = "agentkit-no-key"
_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window")


def hash_user_id(user: str, salt: str | None = None) -> str:
    """A stable, anonymous end-user id for ``ModelSettings(user=...)``.

    Returns the SHA-256 hex digest of the trimmed, case-folded ``user`` (an e-mail or a
    user name), so the provider can tell users apart for abuse detection without learning
    who they are. Pass a ``salt`` kept secret by your application so the digest of a
    known e-mail cannot be recomputed by anyone else.
    """
    normalized = user.strip().casefold()
    data = normalized if salt is None else f"{salt}\x00{normalized}"
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class _NoLoop:
    """Stands for "no asyncio loop" (e.g. trio) in the per-loop client cache."""


_NO_LOOP = _NoLoop()


def _running_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return _NO_LOOP


def _is_openai(base_url: str | None) -> bool:
    if not base_url:
        return True
    host = urlsplit(base_url).hostname or ""
    return host == _OPENAI_HOST or host.endswith("." + _OPENAI_HOST)


class OpenAIChatModel(Model):
    """A model served over the OpenAI chat-completions API (OpenAI, Azure, vLLM, Ollama,
    llama.cpp, LM Studio, Groq, DeepSeek, OpenRouter, ...).

    Args:
        model: The model name the server knows, e.g. ``"gpt-4o-mini"``.
        client: A ready ``openai.AsyncOpenAI`` (e.g. ``AsyncAzureOpenAI``); agentkit uses a
            copy with ``max_retries=0``. When given, the connection arguments below are
            ignored.
        base_url: The server's ``/v1`` URL (default ``OPENAI_BASE_URL``, else OpenAI).
        api_key: The key (default ``OPENAI_API_KEY``). Servers other than OpenAI may need
            none: a placeholder is sent then.
        organization: OpenAI organization id (default ``OPENAI_ORG_ID``).
        project: OpenAI project id (default ``OPENAI_PROJECT_ID``).
        timeout: Seconds per HTTP attempt (``ModelSettings.timeout`` overrides it).
        retry: How failed requests are retried (default ``RetryPolicy()``).
        rate_limit: Client-side rate limit shared by every run using this object.
        default_headers: Headers sent with every request.
        default_query: Query parameters sent with every request (Azure's ``api-version``).
        max_tokens_field: Body field for ``ModelSettings.max_tokens``; default
            ``"max_completion_tokens"`` for OpenAI, ``"max_tokens"`` for other servers.
        user_field: Body field for ``ModelSettings.user``; default ``"safety_identifier"``
            for OpenAI (which deprecated ``user``), ``"user"`` for other servers.
        supports_json_schema: Whether the server honours a JSON-schema
            ``response_format``; set False for servers that do not.
        max_connections: Size of the HTTP connection pool (per event loop). Requests
            beyond it wait for a free connection.
    """

    # Tells agentkit.testing.cassettes to record and replay this model at the HTTP level.
    http_cassette = True

    def __init__(
        self,
        model: str,
        *,
        client: openai.AsyncOpenAI | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        max_tokens_field: str | None = None,
        user_field: str | None = None,
        supports_json_schema: bool = True,
        max_connections: int = 100,
    ) -> None:
        self.name = model
        self.max_connections = max_connections
        self.retry = retry if retry is not None else RetryPolicy()
        self.rate_limit = rate_limit
        self.timeout = timeout
        self.supports_json_schema = supports_json_schema
        self._given_client: openai.AsyncOpenAI | None = None
        self._clients: weakref.WeakKeyDictionary[object, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self.base_url: str | None
        if client is not None:
            self._given_client = client.with_options(max_retries=0)
            self.base_url = str(client.base_url)
            key = client.api_key or ""
        else:
            self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
            key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
            if not key:
                if _is_openai(self.base_url):
                    raise MissingAPIKey(
                        f"no OpenAI API key for model {model!r}. Set one with "
                        "`export OPENAI_API_KEY=sk-...`, pass "
                        f"OpenAIChatModel({model!r}, api_key=...), or run offline with "
                        'Agent(model="local").'
                    )
                # Local servers (vLLM, Ollama, llama.cpp, LM Studio) usually need no key.
                key = _LOCAL_PLACEHOLDER_KEY
        self._api_key = key
        self._connect: dict[str, Any] = {
            "organization": organization,
            "project": project,
            "default_headers": default_headers,
            "default_query": default_query,
        }
        openai_proper = _is_openai(self.base_url)
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if openai_proper else "max_tokens"
        )
        self.user_field = user_field or ("safety_identifier" if openai_proper else "user")

    def __repr__(self) -> str:
        return f"OpenAIChatModel(name={self.name!r}, base_url={self._where()!r})"

    # --- client -------------------------------------------------------------------------

    def _get_client(self) -> openai.AsyncOpenAI:
        client = self._given_client or self._loop_client()
        # agentkit.testing.cassettes, when loaded and active, routes HTTP through itself;
        # looked up in sys.modules so this layer never imports the testing package.
        cassette = sys.modules.get("agentkit.testing.cassettes")
        override = cassette.active_http_client() if cassette is not None else None
        return client if override is None else client.with_options(http_client=override)

    def _loop_client(self) -> openai.AsyncOpenAI:
        loop = _running_loop()
        client = self._clients.get(loop)
        if client is None:
            import httpx2
            import openai

            # One client per event loop: connections cannot move between loops, and
            # run_sync may run each call on a fresh loop. The plain httpx client (not the
            # openai wrapper) does not schedule a close on whatever loop runs at GC time.
            client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(
                    timeout=self.timeout,
                    # The HTTP pool scans every connection per queued request, so a pool
                    # of openai's default 1,000 is 4× slower under a burst than 100.
                    limits=httpx2.Limits(
                        max_connections=self.max_connections,
                        max_keepalive_connections=self.max_connections,
                    ),
                ),
                **self._connect,
            )
            self._clients[loop] = client
        return client

    def _where(self) -> str:
        """The server's URL for messages, without any ``user:password@`` part."""
        url = self.base_url or f"https://{_OPENAI_HOST}/v1"
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return parts._replace(netloc=netloc).geturl()

    def _redact(self, text: str) -> str:
        return redact(text, (self._api_key,))

    def _request_options(self, request: ModelRequest, body: dict[str, Any]) -> dict[str, Any]:
        settings = request.settings
        # Everything goes in extra_body: the client then skips its per-call TypedDict
        # transform of the whole history (measured: the largest cost on the hot path).
        options: dict[str, Any] = {
            "model": body["model"],
            "messages": (),
            "extra_body": body,
        }
        if settings.extra_headers:
            options["extra_headers"] = dict(settings.extra_headers)
        if settings.timeout is not None:
            options["timeout"] = settings.timeout
        return options

    # --- Model interface ----------------------------------------------------------------

    def _prepare(
        self, request: ModelRequest, *, stream: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body = build_body(
            self.name,
            request,
            stream=stream,
            max_tokens_field=self.max_tokens_field,
            user_field=self.user_field,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "agentkit: chat.completions model=%s messages=%d tools=%d stream=%s",
                self.name, len(body["messages"]), len(body.get("tools", ())), stream,
            )
        return body, self._request_options(request, body)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one chat-completions request (retried per :attr:`retry`)."""
        body, options = self._prepare(request, stream=False)
        attempts = self.retry.attempts(f"request to {self.name}")
        result: ModelResponse | None = None
        async for attempt in attempts:
            with attempt:
                result = await self._attempt(body, options)
        assert result is not None  # the loop either set it or raised
        if attempts.failed_answered:
            result.usage.requests += attempts.failed_answered
        return result

    async def _attempt(self, body: dict[str, Any], options: dict[str, Any]) -> ModelResponse:
        import openai

        reservation = await self._reserve(body)
        failure: openai.APIError | None = None
        try:
            raw = await self._get_client().chat.completions.with_raw_response.create(**options)
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            failure = exc
        if failure is not None:
            # Raised outside the except block so no openai exception (whose text may
            # quote the key back) is chained into agentkit's error and its traceback.
            self._fail(failure, reservation)
        if self.rate_limit is not None:
            self.rate_limit.observe_headers(raw.headers)
        content = raw.content
        try:
            response = parse_completion(json.loads(content))
        except (ValueError, MalformedResponse) as exc:
            self._raise_malformed(raw.status_code, content, str(exc))
        if self.rate_limit is not None and reservation is not None:
            self.rate_limit.settle(reservation, response.usage.total_tokens or None)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream one chat-completions request: text deltas as they arrive, then the
        final :class:`ModelResponse`. An attempt that fails before any text reached the
        caller is retried; after that the error is raised (never replayed)."""
        body, options = self._prepare(request, stream=True)
        attempts = self.retry.attempts(f"stream from {self.name}")
        attempt_no = 0
        reader: _StreamReader | None = None
        first = ""
        try:
            async for attempt in attempts:
                with attempt:
                    attempt_no += 1
                    if reader is not None:
                        await reader.close()
                    reader = await self._open_stream(body, options)
                    # Retrying is safe only while nothing has reached the caller.
                    first = await reader.next_text()
            assert reader is not None
            if first:
                yield TextDelta(first)
                while True:
                    failure: TransientError | None = None
                    try:
                        text = await reader.next_text()
                    except TransientError as exc:
                        failure = exc
                    if failure is not None:
                        # As in RetryAttempts: raised outside the except block, chained
                        # to nothing, and every answered attempt counted.
                        error = failure.build_error(
                            attempt_no,
                            "not retried because text had already been streamed to the caller",
                        )
                        error.requests_answered = 1 + attempts.failed_answered
                        raise error
                    if not text:
                        break
                    yield TextDelta(text)
            response = reader.merger.result(requests=1 + attempts.failed_answered)
            if self.rate_limit is not None and reader.reservation is not None:
                self.rate_limit.settle(reader.reservation, response.usage.total_tokens or None)
            yield response
        finally:
            if reader is not None:
                await reader.close()

    async def _open_stream(self, body: dict[str, Any], options: dict[str, Any]) -> _StreamReader:
        import openai

        reservation = await self._reserve(body)
        manager = self._get_client().chat.completions.with_streaming_response.create(
            stream=True, **options
        )
        failure: openai.APIError | None = None
        try:
            response = await manager.__aenter__()
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            failure = exc
        if failure is not None:
            self._fail(failure, reservation)
        if self.rate_limit is not None:
            self.rate_limit.observe_headers(response.headers)
        return _StreamReader(self, response, reservation)

    async def _reserve(self, body: dict[str, Any]) -> Reservation | None:
        """Wait for the rate limiter (if any) to admit this request's estimated tokens."""
        if self.rate_limit is None:
            return None
        return await self.rate_limit.acquire(estimate_tokens(body))

    # --- errors -------------------------------------------------------------------------

    def _fail(self, exc: openai.APIError, reservation: Reservation | None) -> NoReturn:
        import openai

        if isinstance(exc, openai.APIStatusError):
            self._after_error(exc, reservation)
            self._raise_status(exc)
        if self.rate_limit is not None and reservation is not None:
            self.rate_limit.settle(reservation, 0)
        self._raise_connection(exc)

    def _after_error(
        self, exc: openai.APIStatusError, reservation: Reservation | None
    ) -> None:
        limiter = self.rate_limit
        if limiter is None:
            return
        if reservation is not None:
            limiter.settle(reservation, 0)
        limiter.observe_headers(exc.response.headers)
        if exc.status_code == 429 and _error_code(exc.body) != "insufficient_quota":
            hint = parse_retry_after(exc.response.headers)
            limiter.pause(hint if hint is not None else 1.0)

    def _server_message(self, body: Any, fallback: str) -> str:
        message: Any = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else inner
        elif isinstance(body, str):
            message = body
        text = str(message) if message else fallback
        if len(text) > 500:
            text = text[:500] + "…"
        return self._redact(text)

    def _clean_body(self, body: Any) -> Any:
        if body is None:
            return None
        try:
            return json.loads(self._redact(json.dumps(body, default=str)))
        except ValueError:
            return self._redact(str(body))

    def _raise_status(self, exc: openai.APIStatusError) -> NoReturn:
        status = exc.status_code
        body = self._clean_body(exc.body)
        message = self._server_message(exc.body, f"HTTP {status} with no error message")
        code = _error_code(exc.body)
        where = self._where()
        model = self.name
        if status == 429 and code == "insufficient_quota":
            raise QuotaExceeded(
                f"the account behind this API key is out of quota (HTTP 429 "
                f"insufficient_quota from {where}): {message}. Retrying cannot help: add "
                "credit or raise the limit in the provider's billing settings, or use "
                "another key.",
                status=status, body=body,
            )
        if status == 401:
            raise AuthenticationError(
                f"{where} rejected the API key (HTTP 401): {message}. Check "
                "OPENAI_API_KEY or OpenAIChatModel(api_key=...).",
                status=status, body=body,
            )
        if status == 403:
            raise PermissionDenied(
                f"{where} refused access to model {model!r} (HTTP 403): {message}. The "
                "key is valid but not allowed to do this; check its project, organization "
                "or region.",
                status=status, body=body,
            )
        if status == 404:
            raise ModelNotFound(
                f"model {model!r} not found at {where} (HTTP 404): {message}. Check the "
                "model name and base_url (GET /v1/models lists what the server has).",
                status=status, body=body,
            )
        if status in (400, 413, 422) and _is_context_error(code, message):
            raise ContextLengthExceeded(
                f"the conversation is too long for model {model!r} (HTTP {status}): "
                f"{message}. Shorten the history, lower max_tokens or use a model with a "
                "larger context window.",
                status=status, body=body,
            )
        if not RetryPolicy.retryable_status(status):
            raise ModelHTTPError(
                f"{where} answered HTTP {status} for model {model!r}: {message}",
                status=status, body=body,
            )
        retry_after = parse_retry_after(exc.response.headers)

        def build(attempts: int, note: str) -> ModelError:
            if status == 429:
                return RateLimited(
                    f"rate limited by {where} (HTTP 429) after {attempts} attempt(s): "
                    f"{message}. {note}. Lower the concurrency or set "
                    "OpenAIChatModel(rate_limit=RateLimit(...)).",
                    body=body, attempts=attempts, retry_after=retry_after,
                )
            return ModelHTTPError(
                f"{where} answered HTTP {status} for model {model!r} after {attempts} "
                f"attempt(s): {message}. {note}.",
                status=status, body=body, attempts=attempts,
            )

        raise TransientError(
            f"HTTP {status}: {message}",
            build_error=build,
            retry_after=retry_after,
            counts_as_request=True,
        )

    def _raise_connection(self, exc: BaseException) -> NoReturn:
        import openai

        timed_out = isinstance(exc, openai.APITimeoutError) or (
            "timeout" in type(exc).__name__.lower()
        )
        what = "timed out" if timed_out else "connection failed"
        detail = self._redact(str(exc) or type(exc).__name__)
        cause = exc.__cause__
        if cause is not None and str(cause):
            detail = f"{detail} ({self._redact(str(cause))[:200]})"
        where = self._where()

        def build(attempts: int, note: str) -> ModelError:
            return ModelConnectionError(
                f"could not get an answer from {where} for model {self.name!r}: {what} "
                f"after {attempts} attempt(s): {detail}. {note}. Check base_url, the "
                "network, or raise the timeout.",
                attempts=attempts,
            )

        raise TransientError(f"{what}: {detail}", build_error=build)

    def _raise_malformed(self, status: int, content: bytes | str, problem: str) -> NoReturn:
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        snippet = self._redact(text[:300])
        where = self._where()

        def build(attempts: int, note: str) -> ModelError:
            return ModelHTTPError(
                f"{where} answered HTTP {status} for model {self.name!r} with a body that "
                f"is not a chat completion ({self._redact(problem)}) after {attempts} "
                f"attempt(s): {snippet!r}. {note}. Is base_url an OpenAI-compatible "
                "/v1 endpoint?",
                status=status, body=snippet, attempts=attempts,
            )

        raise TransientError(
            f"malformed response: {self._redact(problem)}",
            build_error=build,
            counts_as_request=True,
        )


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return str(code) if code is not None else None
    return None


def _is_context_error(code: str | None, message: str) -> bool:
    lowered = message.lower()
    return code == "context_length_exceeded" or any(m in lowered for m in _CONTEXT_MARKERS)


class _StreamReader:
    """Reads one SSE response line by line into a :class:`StreamMerger`."""

    def __init__(
        self, model: OpenAIChatModel, response: Any, reservation: Reservation | None
    ) -> None:
        self.model = model
        self.response = response
        self.reservation = reservation
        self.merger = StreamMerger()
        self._lines: AsyncIterator[str] = response.iter_lines()
        self._done = False

    async def close(self) -> None:
        if self._done:
            # Read to the end of the body after [DONE] so the connection goes back to the
            # pool; closing mid-body would cost a new TCP connection per streamed request.
            with contextlib.suppress(Exception):
                async for _ in self._lines:
                    pass
        await self.response.close()

    async def next_text(self) -> str:
        """The next non-empty text delta, or ``""`` once the stream has ended properly.
        Raises :class:`TransientError` on a broken or truncated stream."""
        import httpx2

        failure: Exception | None = None
        try:
            return await self._next_text()
        except (httpx2.TransportError, httpx2.TimeoutException) as exc:
            failure = exc
        # Outside the except block: the transport error is not chained into ours.
        self.model._raise_connection(failure)

    async def _next_text(self) -> str:
        merger = self.merger
        if self._done:
            return ""
        async for line in self._lines:
            if not line.startswith("data:"):
                continue  # blank separators, comments (":"), "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                self._done = True
                return ""
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                self.model._raise_malformed(200, data, f"bad JSON in stream: {exc}")
            if isinstance(chunk, dict) and chunk.get("error"):
                self._raise_stream_error(chunk["error"])
            try:
                text = merger.feed(chunk)
            except MalformedResponse as exc:
                self.model._raise_malformed(200, data, str(exc))
            if text:
                return text
        self._done = True
        if merger.finish_reason is None:
            # EOF without [DONE] or a finish reason: the connection was cut.
            self.model._raise_connection(
                ConnectionError(f"stream ended after {merger.chunks} chunk(s) without finishing")
            )
        return ""

    def _raise_stream_error(self, error: Any) -> NoReturn:
        message = self.model._server_message({"error": error}, "error event in the stream")
        body = self.model._clean_body(error)
        where = self.model._where()
        name = self.model.name

        def build(attempts: int, note: str) -> ModelError:
            return ModelHTTPError(
                f"{where} sent an error inside the stream for model {name!r} after "
                f"{attempts} attempt(s): {message}. {note}.",
                status=500, body=body, attempts=attempts,
            )

        raise TransientError(
            f"error in stream: {message}", build_error=build, counts_as_request=True
        )
