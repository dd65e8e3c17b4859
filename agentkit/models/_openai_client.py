"""What every agentkit client of an OpenAI-compatible API shares: the connection, retries,
the rate limit, redaction and the one classification of failures into typed errors.

:class:`OpenAIEndpoint` is the base of :class:`~agentkit.models.openai.OpenAIChatModel`,
:class:`~agentkit.models.responses.OpenAIResponsesModel`,
:class:`~agentkit.embeddings.OpenAIEmbedder` and
:class:`~agentkit.models.moderation.OpenAIModeration`. Requests go through the official
``openai`` client (built with ``max_retries=0``: retries belong to
:class:`~agentkit.retry.RetryPolicy`, so nothing retries twice), using its raw response so
the JSON is read straight into agentkit's types. ``openai`` is imported on first use.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar
from urllib.parse import urlsplit

import anyio

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
from agentkit.models._openai_wire import MalformedResponse, StreamErrorEvent
from agentkit.models.base import ModelResponse, StreamItem, TextDelta
from agentkit.retry import RateLimit, RetryPolicy, TransientError, parse_retry_after, plural
from agentkit.settings import ModelSettings

if TYPE_CHECKING:
    import ssl

    import httpx2
    import openai

__all__ = ["Connection", "OpenAIEndpoint", "StreamReader"]

logger = logging.getLogger("agentkit")

_OPENAI_HOST = "api.openai.com"
_LOCAL_PLACEHOLDER_KEY = "agentkit-no-key"
_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window")

# Answers that retrying cannot change: error class and message, by kind.
_FINAL: dict[object, tuple[type[ModelHTTPError], str]] = {
    401: (AuthenticationError, "{where} rejected the API key (HTTP 401): {message} Check "
          "OPENAI_API_KEY or {cls}(api_key=...)."),
    403: (PermissionDenied, "{where} refused access to model {model!r} (HTTP 403): {message} "
          "The key is valid but not allowed to do this; check its project, organization or "
          "region."),
    404: (ModelNotFound, "model {model!r} not found at {where} (HTTP 404): {message} Check the "
          "model name and base_url (GET /v1/models lists what the server has)."),
    "quota": (QuotaExceeded, "the account behind this API key is out of quota (HTTP 429 "
              "insufficient_quota from {where}): {message} Retrying cannot help: add credit "
              "or raise the limit in the provider's billing settings, or use another key."),
    "context": (ContextLengthExceeded, "the conversation is too long for model {model!r} "
                "(HTTP {status}): {message} Shorten the history, lower max_tokens or use a "
                "model with a larger context window."),
    "rejected": (ModelHTTPError, "{where} answered HTTP {status} for model {model!r}: "
                 "{message} Retrying cannot help: change the request as the server says."),
}

T = TypeVar("T")
Resource = Callable[["openai.AsyncOpenAI"], Any]
"""Picks the ``openai`` resource of an endpoint, e.g. ``lambda c: c.chat.completions``."""


class Connection(TypedDict, total=False):
    """The connection arguments every OpenAI-compatible endpoint takes, documented on
    :class:`~agentkit.models.OpenAIChatModel`."""

    client: openai.AsyncOpenAI | None
    base_url: str | None
    api_key: str | None
    organization: str | None
    project: str | None
    timeout: float
    retry: RetryPolicy | None
    rate_limit: RateLimit | None
    default_headers: Mapping[str, str] | None
    default_query: Mapping[str, object] | None
    max_connections: int


class StreamReader(Protocol):
    """Accumulates one SSE stream's JSON events into a :class:`ModelResponse`."""

    chunks: int

    @property
    def finished(self) -> bool:
        """Whether the stream said it is complete (a finish reason, a final event)."""

    def feed(self, event: Any) -> str:
        """Merge one decoded event; return the text it adds. ``ValueError`` when it is
        malformed or an error event."""

    def check_complete(self) -> None:
        """Raise ``MalformedResponse`` if the finished stream holds no answer."""

    def result(self, requests: int = 1) -> ModelResponse:
        """The response from everything fed so far."""


def _running_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None  # no asyncio loop (trio)


def is_openai(base_url: str | None) -> bool:
    """Whether ``base_url`` is OpenAI's own API (None means it is)."""
    if not base_url:
        return True
    host = urlsplit(base_url).hostname or ""
    return host == _OPENAI_HOST or host.endswith("." + _OPENAI_HOST)


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


class OpenAIEndpoint:
    """Connection, retries, rate limit and error handling for one model of an
    OpenAI-compatible server. Subclasses add the endpoint's request and response shapes.

    The constructor arguments are those of :class:`~agentkit.models.OpenAIChatModel`.
    """

    name: str
    _body_kind = "response"
    """What a well-formed body is, for errors: "a chat completion"."""
    _offline_hint = 'run offline with Agent(model="local")'

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
        max_connections: int = 100,
    ) -> None:
        self.name = model
        self.max_connections = max_connections
        self.retry = retry if retry is not None else RetryPolicy()
        self.rate_limit = rate_limit
        self.timeout = timeout
        self._given_client = client.with_options(max_retries=0) if client is not None else None
        self._clients: dict[object, tuple[openai.AsyncOpenAI, AsyncGenerator[None, None]]] = {}
        self._tls: ssl.SSLContext | None = None
        self.base_url: str | None
        if client is not None:
            self.base_url = str(client.base_url)
            key = client.api_key or ""
        else:
            self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
            key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        # Checked at the first request, not here: replaying a cassette needs no key.
        self._key_missing = not key and is_openai(self.base_url)
        # Local servers (vLLM, Ollama, llama.cpp, LM Studio) usually need no key.
        self._api_key = key or _LOCAL_PLACEHOLDER_KEY
        self._connect: dict[str, Any] = {
            "organization": organization,
            "project": project,
            "default_headers": default_headers,
            "default_query": default_query,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self._where()!r})"

    def with_transport(
        self: T, transport: httpx2.AsyncBaseTransport, *, needs_key: bool = True
    ) -> T:
        """A copy whose HTTP requests go through ``transport`` (how
        :func:`agentkit.testing.cassette` records and replays). ``needs_key=False`` when the
        transport answers by itself, so that no key is needed."""
        import httpx2

        assert isinstance(self, OpenAIEndpoint)
        clone = copy.copy(self)
        http = httpx2.AsyncClient(transport=transport)
        given = self._given_client
        clone._given_client = (
            given.with_options(http_client=http) if given is not None else self._new_client(http)
        )
        clone._clients = {}
        clone._key_missing = self._key_missing and needs_key
        return clone

    def _per_call(
        self, settings: ModelSettings, options: dict[str, Any]
    ) -> tuple[dict[str, Any], float]:
        """``options`` with the request's own headers and timeout, and the whole-attempt
        timeout to enforce."""
        if settings.extra_headers:
            options["extra_headers"] = dict(settings.extra_headers)
        if settings.timeout is not None:
            options["timeout"] = settings.timeout
        return options, self.timeout if settings.timeout is None else settings.timeout

    def require_key(self) -> None:
        """Raise :class:`~agentkit.errors.MissingAPIKey` if requests need a key and none was
        given (what the first request raises; call it to fail earlier)."""
        if self._key_missing:
            cls = type(self).__name__
            raise MissingAPIKey(
                f"no OpenAI API key for model {self.name!r}. Set one with "
                f"`export OPENAI_API_KEY=sk-...`, pass {cls}({self.name!r}, api_key=...), "
                f"or {self._offline_hint}."
            )

    # --- client -------------------------------------------------------------------------

    def _new_client(self, http_client: httpx2.AsyncClient) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
            http_client=http_client,
            **self._connect,
        )

    async def _client(self) -> openai.AsyncOpenAI:
        if self._given_client is not None:
            return self._given_client
        loop = _running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            import httpx2
            import openai

            # One client per event loop: connections cannot move between loops, and
            # run_sync runs each call on a new loop. They share one TLS context: loading
            # the CA bundle costs ~80 ms. A pool of openai's default 1,000 is 4× slower
            # under a burst than 100 (the pool scans every connection).
            if self._tls is None:
                self._tls = httpx2.create_ssl_context()
            client = self._new_client(openai.DefaultAsyncHttpxClient(
                timeout=self.timeout,
                verify=self._tls,
                limits=httpx2.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
            ))
            closer = self._close_with_loop(loop, client)
            entry = self._clients[loop] = (client, closer)
            await closer.__anext__()
        return entry[0]

    async def _close_with_loop(
        self, loop: object, client: openai.AsyncOpenAI
    ) -> AsyncGenerator[None, None]:
        # Left suspended at its yield: asyncio.run, anyio.run and trio close every pending
        # async generator before their loop ends, which runs this while the loop can still
        # close the client's connections (a client per finished loop would leak a socket).
        try:
            yield
        finally:
            self._clients.pop(loop, None)
            await client.close()

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

    # --- one call, retried --------------------------------------------------------------

    async def _call(
        self,
        resource: Resource,
        options: dict[str, Any],
        timeout: float,
        tokens: int,
        parse: Callable[[Any], T],
        spent: Callable[[T], int | None],
    ) -> tuple[T, int]:
        """One non-streamed request, retried per :attr:`retry`: the body read by
        ``parse`` (a ``ValueError`` there means a malformed body) and the number of
        attempts the server answered. ``spent`` gives the tokens the answer cost."""
        attempts = self.retry.attempts(f"request to {self.name}")
        async for attempt in attempts:
            with attempt:
                raw, reservation, _ = await self._open(
                    resource, options, timeout, tokens, stream=False)
                try:
                    value = parse(json.loads(raw.content))
                except ValueError as exc:
                    content = raw.content.decode("utf-8", "replace")
                    raise self._failure(exc, content=content) from None
        if self.rate_limit is not None and reservation is not None:
            self.rate_limit.settle(reservation, spent(value))
        return value, attempts.answered

    async def _stream(
        self,
        resource: Resource,
        options: dict[str, Any],
        timeout: float,
        tokens: int,
        new_reader: Callable[[], StreamReader],
    ) -> AsyncIterator[StreamItem]:
        """Stream one request: text deltas as they arrive, then the final
        :class:`ModelResponse`. An attempt that fails before any text reached the caller is
        retried; after that the error is raised (never replayed)."""
        attempts = self.retry.attempts(f"stream from {self.name}")
        raw: Any = None
        texts: AsyncGenerator[str, None] | None = None
        try:
            async for attempt in attempts:
                with attempt:
                    await _close(texts, raw)
                    raw, reservation, deadline = await self._open(
                        resource, options, timeout, tokens, stream=True)
                    reader = new_reader()
                    texts = self._texts(raw, reader)
                    # Retrying is safe only while nothing has reached the caller.
                    text = await self._next_text(texts, deadline, timeout)
            assert texts is not None  # the attempts either opened a stream or raised
            while text:
                yield TextDelta(text)
                failure: TransientError | None = None
                try:
                    text = await self._next_text(texts, deadline, timeout)
                except TransientError as exc:
                    failure = exc
                if failure is not None:  # raised here: chained to nothing
                    note = "Text had already reached the caller, so it was not retried."
                    raise attempts.bill(failure.build_error(attempts.number, note))
            response = reader.result(requests=attempts.answered)
            if self.rate_limit is not None and reservation is not None:
                self.rate_limit.settle(reservation, response.usage.total_tokens or None)
            yield response
        finally:
            await _close(texts, raw)

    async def _open(
        self,
        resource: Resource,
        options: dict[str, Any],
        timeout: float,
        tokens: int,
        *,
        stream: bool,
    ) -> tuple[Any, int | None, float]:
        """One HTTP attempt up to the response headers (a non-streamed response: its whole
        body), sent once the rate limiter allows ``tokens``, within ``timeout`` seconds.
        Returns the raw response, the rate-limit reservation and the attempt's deadline."""
        import openai

        limiter = self.rate_limit
        reservation = None if limiter is None else await limiter.acquire(tokens)
        endpoint = resource(await self._client())
        deadline = anyio.current_time() + timeout
        failure: Exception | None = None
        try:
            with anyio.fail_after(timeout):
                if stream:
                    response: Any = await endpoint.with_streaming_response.create(
                        stream=True, **options).__aenter__()
                else:
                    response = await endpoint.with_raw_response.create(**options)
        except (openai.APIStatusError, openai.APIConnectionError, TimeoutError) as exc:
            failure = exc
        if failure is None:
            if limiter is not None:
                limiter.observe_headers(response.headers)
            return response, reservation, deadline
        # Raised outside the except block so no openai exception (whose text may quote
        # the key back) is chained into agentkit's error and its traceback.
        error = self._failure(failure, timeout=timeout)
        if limiter is not None:
            if reservation is not None:
                limiter.settle(reservation, 0)
            if isinstance(failure, openai.APIStatusError):
                limiter.observe_headers(failure.response.headers)
                if failure.status_code == 429 and isinstance(error, TransientError):
                    limiter.pause(1.0 if error.retry_after is None else error.retry_after)
        raise error

    async def _texts(self, response: Any, reader: StreamReader) -> AsyncGenerator[str, None]:
        """The text deltas of one SSE response, merged into ``reader`` as they come.
        Raises :class:`TransientError` on a truncated or malformed stream."""
        done = False
        async for line in response.iter_lines():
            # After [DONE], read to the end of the body so the connection goes back to
            # the pool; blank separators, comments (":") and "event:" lines are skipped.
            if done or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            try:
                text = reader.feed(json.loads(data))
            except ValueError as exc:  # bad JSON, a malformed event, an error event
                raise self._failure(exc, content=data) from None
            if text:
                yield text
        if not done and not reader.finished:
            # EOF without [DONE] or a final event: the connection was cut.
            cut = f"stream ended after {plural(reader.chunks, 'chunk')} without finishing"
            raise self._failure(ConnectionError(cut))
        try:
            reader.check_complete()
        except MalformedResponse as exc:
            failure = exc
        else:
            return
        raise self._failure(failure)

    async def _next_text(self, texts: AsyncIterator[str], deadline: float, timeout: float) -> str:
        """The next text of ``texts`` ("" at the end), before the attempt's deadline."""
        import httpx2

        try:
            with anyio.fail_after(deadline - anyio.current_time()):
                return await anext(texts, "")
        except (httpx2.TransportError, TimeoutError) as exc:
            failure: Exception = exc
        # Outside the except block: the transport error is not chained into ours.
        raise self._failure(failure, timeout=timeout)

    # --- errors -------------------------------------------------------------------------

    def _failure(
        self, exc: BaseException, *, timeout: float | None = None, content: str = ""
    ) -> Exception:
        """The one classification of a failed attempt: the final error to raise, or a
        :class:`TransientError` the retry policy may retry.

        ``exc`` is an HTTP error status, an error event in a stream, a body that is not
        what the endpoint answers (``ValueError``; ``content`` is the body), or no answer
        at all (connection failed, cut, or not complete within ``timeout`` seconds).
        """
        import openai

        where, model, cls = self._where(), self.name, type(self).__name__
        body: Any
        headers: Mapping[str, str]
        if isinstance(exc, StreamErrorEvent):
            status, body, headers = 500, {"error": exc.error}, {}
            head = f"{where} sent an error inside the stream for model {model!r}"
        elif isinstance(exc, openai.APIStatusError):
            status, body, headers = exc.status_code, exc.body, exc.response.headers
            head = f"{where} answered HTTP {status} for model {model!r}"
        elif isinstance(exc, ValueError):
            problem, snippet = self._redact(str(exc)), self._redact(content[:300])
            shown = f": {snippet!r}" if snippet else ""
            expected = self._body_kind

            def malformed(attempts: int, note: str) -> ModelError:
                return ModelHTTPError(
                    f"{where} answered for model {model!r} with a body that is not {expected} "
                    f"({problem}) after {plural(attempts, 'attempt')}{shown}. "
                    f"{note} Is base_url an OpenAI-compatible /v1 endpoint?",
                    status=200, body=snippet, attempts=attempts,
                )

            return TransientError(
                f"malformed response: {problem}", build_error=malformed, counts_as_request=True
            )
        else:
            what = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
            if isinstance(exc, TimeoutError) and timeout is not None:
                detail = f"no complete answer within {plural(timeout, 'second')}"
            else:
                detail = self._redact(str(exc) or type(exc).__name__).rstrip(".")
                if exc.__cause__ is not None and str(exc.__cause__):
                    detail += f" ({self._redact(str(exc.__cause__))[:200]})"

            def unanswered(attempts: int, note: str) -> ModelError:
                return ModelConnectionError(
                    f"could not get an answer from {where} for model {model!r}: {what} after "
                    f"{plural(attempts, 'attempt')}: {_sentence(detail)} {note} Check "
                    "base_url, the network, or raise the timeout.",
                    attempts=attempts,
                )

            return TransientError(f"{what}: {detail}", build_error=unanswered)

        inner = body.get("error", body) if isinstance(body, dict) else body
        fields = inner if isinstance(inner, dict) else {"message": inner}
        message = str(fields.get("message") or f"HTTP {status} with no error message")
        message = _sentence(self._redact(message if len(message) <= 500 else message[:500] + "…"))
        code = fields.get("code") or fields.get("type")
        try:
            clean = None if body is None else json.loads(
                self._redact(json.dumps(body, default=str)))
        except ValueError:
            clean = self._redact(str(body))
        kind: object = None
        if status in (401, 403, 404):
            kind = status
        elif status == 429 and code == "insufficient_quota":
            kind = "quota"
        elif status in (400, 413, 422) and (
            code == "context_length_exceeded" or any(m in message.lower() for m in _CONTEXT_MARKERS)
        ):
            kind = "context"
        elif not RetryPolicy.retryable_status(status):
            kind = "rejected"
        if kind is not None:
            kind_error, template = _FINAL[kind]
            text = template.format(
                where=where, model=model, status=status, message=message, cls=cls)
            return kind_error(text, status=status, body=clean)
        retry_after = parse_retry_after(headers)

        def retried(attempts: int, note: str) -> ModelError:
            text = f"{head} after {plural(attempts, 'attempt')}: {message} {note}"
            if status == 429:
                return RateLimited(
                    f"{text} Lower the concurrency or set "
                    f"{cls}(rate_limit=RateLimit(...)).",
                    body=clean, attempts=attempts, retry_after=retry_after,
                )
            return ModelHTTPError(text, status=status, body=clean, attempts=attempts)

        return TransientError(
            f"HTTP {status}: {message}",
            build_error=retried,
            retry_after=retry_after,
            counts_as_request=True,
        )


async def _close(texts: AsyncGenerator[str, None] | None, response: Any) -> None:
    # Explicitly, now: a generator left to the garbage collector is closed on whatever
    # loop runs then, if any.
    if texts is not None:
        await texts.aclose()
    if response is not None:
        await response.close()
