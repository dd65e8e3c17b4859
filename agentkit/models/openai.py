"""OpenAIChatModel: the chat-completions API of OpenAI and of any compatible server.

Connection, retries, rate limit and errors are :class:`~agentkit.models._openai_client.
OpenAIEndpoint`'s (shared with the Responses backend and the embedder); this module adds
the chat-completions body and its parsing (``_openai_wire``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from agentkit.models._openai_client import OpenAIEndpoint, is_openai
from agentkit.models._openai_wire import (
    StreamMerger,
    build_body,
    estimate_tokens,
    parse_completion,
)
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem
from agentkit.retry import RateLimit, RetryPolicy

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIChatModel", "hash_user_id"]

logger = logging.getLogger("agentkit")


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


class OpenAIChatModel(OpenAIEndpoint, Model):
    """A model served over the OpenAI chat-completions API (OpenAI, Azure, vLLM, Ollama,
    llama.cpp, LM Studio, Groq, DeepSeek, OpenRouter, ...).

    Args:
        model: The model name the server knows, e.g. ``"gpt-4o-mini"``.
        client: A ready ``openai.AsyncOpenAI`` (e.g. ``AsyncAzureOpenAI``); agentkit uses a
            copy with ``max_retries=0``. When given, the connection arguments below are
            ignored.
        base_url: The server's ``/v1`` URL (default ``OPENAI_BASE_URL``, else OpenAI).
        api_key: The key (default ``OPENAI_API_KEY``). Servers other than OpenAI may need
            none: a placeholder is sent then. OpenAI without a key raises
            :class:`~agentkit.errors.MissingAPIKey` at the first request.
        organization: OpenAI organization id (default ``OPENAI_ORG_ID``).
        project: OpenAI project id (default ``OPENAI_PROJECT_ID``).
        timeout: Seconds one HTTP attempt may take, from connecting to the last byte
            (``ModelSettings.timeout`` overrides it).
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

    _body_kind = "a chat completion"

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
        super().__init__(
            model, client=client, base_url=base_url, api_key=api_key,
            organization=organization, project=project, timeout=timeout, retry=retry,
            rate_limit=rate_limit, default_headers=default_headers,
            default_query=default_query, max_connections=max_connections,
        )
        self.supports_json_schema = supports_json_schema
        openai_proper = is_openai(self.base_url)
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if openai_proper else "max_tokens"
        )
        self.user_field = user_field or ("safety_identifier" if openai_proper else "user")

    def _prepare(
        self, request: ModelRequest, *, stream: bool
    ) -> tuple[dict[str, Any], dict[str, Any], float]:
        self.require_key()
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
        settings = request.settings
        # Everything goes in extra_body: the client then skips its per-call TypedDict
        # transform of the whole history (measured: the largest cost on the hot path).
        options, timeout = self._per_call(
            settings, {"model": body["model"], "messages": (), "extra_body": body}
        )
        return body, options, timeout

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one chat-completions request (retried per :attr:`retry`)."""
        body, options, timeout = self._prepare(request, stream=False)
        response, answered = await self._call(
            _completions, options, timeout, estimate_tokens(body), parse_completion,
            _spent,
        )
        response.usage.requests = answered
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream one chat-completions request: text deltas as they arrive, then the
        final :class:`ModelResponse`. An attempt that fails before any text reached the
        caller is retried; after that the error is raised (never replayed)."""
        body, options, timeout = self._prepare(request, stream=True)
        async for item in self._stream(
            _completions, options, timeout, estimate_tokens(body), StreamMerger
        ):
            yield item


def _completions(client: openai.AsyncOpenAI) -> Any:
    return client.chat.completions


def _spent(response: ModelResponse) -> int | None:
    return response.usage.total_tokens or None
