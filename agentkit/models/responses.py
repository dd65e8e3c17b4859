"""OpenAIResponsesModel: OpenAI's Responses API (``POST /v1/responses``) behind the same
:class:`~agentkit.models.Model` interface as the chat backend.

Connection, retries, rate limit, redaction and errors are those of
:class:`~agentkit.models.OpenAIChatModel` (one shared implementation,
``_openai_client.OpenAIEndpoint``); this module adds the Responses body and its parsing.
Conversations stay agentkit :class:`~agentkit.messages.Message` lists, so a thread written
with either backend continues with the other.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from agentkit.messages import Message
from agentkit.models._openai_client import Connection, OpenAIEndpoint, StreamReader, is_openai
from agentkit.models._responses_wire import (
    UNSUPPORTED_SETTINGS,
    EventReader,
    build_body,
    estimate_tokens,
    parse_response,
)
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAIResponsesModel"]

logger = logging.getLogger("agentkit")

_REMEMBERED_RESPONSES = 1024
_ENCRYPTED_REASONING = "reasoning.encrypted_content"


def _reasoning_model(name: str) -> bool:
    """Whether ``name`` looks like an OpenAI reasoning model (o1, o3, o4-mini, gpt-5...)."""
    base = name.rsplit("/", 1)[-1].lower()
    return (len(base) > 1 and base[0] == "o" and base[1].isdigit()) or base.startswith("gpt-5")


def _fingerprint(message: Message) -> tuple[str, tuple[str, ...]]:
    return message.text, tuple(call.id for call in message.tool_calls)


class OpenAIResponsesModel(OpenAIEndpoint, Model):
    """A model served over the OpenAI Responses API (OpenAI, Azure, and compatible servers
    such as vLLM or Ollama). ``Agent(model="responses:gpt-4o-mini")`` selects it.

    The connection arguments (``client``, ``base_url``, ``api_key``, ``organization``,
    ``project``, ``timeout``, ``retry``, ``rate_limit``, ``default_headers``,
    ``default_query``, ``max_connections``) are those of
    :class:`~agentkit.models.OpenAIChatModel`, with the same defaults and environment
    variables.

    Args:
        model: The model name, e.g. ``"gpt-4o-mini"`` or ``"o4-mini"``.
        store: Whether the server keeps responses (``store`` in the body). False by
            default: the conversation lives in agentkit (and its thread store), not at the
            provider.
        previous_response_id: Opt in to server-side state: each request names the
            previous response and sends only the new items (implies ``store=True``).
            A conversation the model object has not seen (another process, another
            backend) is sent in full.
        encrypted_reasoning: Ask for reasoning items with ``encrypted_content`` and send
            them back on the next turns (needed with ``store=False`` for reasoning models
            to keep their chain of thought). Default: on for reasoning model names
            (``o1``, ``o3``, ``o4-mini``, ``gpt-5``...), off for others, which reject it.
        reasoning: The ``reasoning`` field, e.g. ``{"effort": "low", "summary": "auto"}``.
        user_field: Body field for ``ModelSettings.user``; default ``"safety_identifier"``
            for OpenAI, ``"user"`` for other servers.
        supports_json_schema: Whether the server honours ``text.format`` JSON schemas.

    ``ModelSettings`` fields the Responses API has no place for (``stop``,
    ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``seed``) are left out,
    with one warning per model object.
    """

    _body_kind = "a Responses API response"

    def __init__(
        self,
        model: str,
        *,
        store: bool = False,
        previous_response_id: bool = False,
        encrypted_reasoning: bool | None = None,
        reasoning: Mapping[str, Any] | None = None,
        user_field: str | None = None,
        supports_json_schema: bool = True,
        **connection: Unpack[Connection],
    ) -> None:
        super().__init__(model, **connection)
        self.previous_response_id = previous_response_id
        self.store = store or previous_response_id
        if encrypted_reasoning is None:
            encrypted_reasoning = _reasoning_model(model)
        # With store=True the server keeps reasoning itself; encrypted copies are for
        # stateless use only.
        self.include: Sequence[str] = (
            (_ENCRYPTED_REASONING,) if encrypted_reasoning and not self.store else ()
        )
        self.reasoning = dict(reasoning) if reasoning is not None else None
        openai_proper = is_openai(self.base_url)
        self.user_field = user_field or ("safety_identifier" if openai_proper else "user")
        self.supports_json_schema = supports_json_schema
        self._warned = False
        # Last assistant message (its text and call ids) -> the response that wrote it.
        self._responses: OrderedDict[tuple[str, tuple[str, ...]], str] = OrderedDict()

    # --- Model interface ----------------------------------------------------------------

    def _previous(self, messages: Sequence[Message]) -> tuple[str | None, int]:
        """The response id the server holds this conversation under, and how many
        messages it covers (None, 0 when not opted in or unknown)."""
        if not self.previous_response_id:
            return None, 0
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == "assistant":
                known = self._responses.get(_fingerprint(messages[index]))
                return (known, index + 1) if known is not None else (None, 0)
        return None, 0

    def _remember(self, response: ModelResponse, response_id: str | None) -> None:
        if not self.previous_response_id or response_id is None:
            return
        self._responses[_fingerprint(response.message)] = response_id
        while len(self._responses) > _REMEMBERED_RESPONSES:
            self._responses.popitem(last=False)

    def _prepare(
        self, request: ModelRequest, *, stream: bool
    ) -> tuple[dict[str, Any], dict[str, Any], float]:
        self.require_key()
        settings = request.settings
        ignored = [name for name in UNSUPPORTED_SETTINGS if getattr(settings, name) is not None]
        if ignored and not self._warned:
            self._warned = True
            logger.warning(
                "agentkit: the Responses API has no %s; model %s leaves them out",
                ", ".join(ignored), self.name,
            )
        previous, skip = self._previous(request.messages)
        body = build_body(
            self.name,
            request,
            stream=stream,
            store=self.store,
            include=self.include,
            user_field=self.user_field,
            reasoning=self.reasoning,
            previous_response_id=previous,
            skip=skip,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "agentkit: responses model=%s items=%d tools=%d stream=%s previous=%s",
                self.name, len(body["input"]), len(body.get("tools", ())), stream, previous,
            )
        # As for chat: everything in extra_body skips the client's per-call transform.
        options, timeout = self._per_call(settings, {"extra_body": body})
        return body, options, timeout

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one Responses request (retried per :attr:`retry`).

        Raises :class:`~agentkit.errors.ModelError` when the response has
        ``status: "failed"``; an ``incomplete`` response comes back with finish reason
        ``"length"`` (``max_output_tokens``) or ``"content_filter"``, which a run turns
        into :class:`~agentkit.errors.OutputTruncated` or
        :class:`~agentkit.errors.ContentFiltered`.
        """
        body, options, timeout = self._prepare(request, stream=False)
        (response, response_id), answered = await self._call(
            _responses, options, timeout, estimate_tokens(body), parse_response, _spent
        )
        response.usage.requests = answered
        self._remember(response, response_id)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream one Responses request: text deltas as ``response.output_text.delta``
        events arrive, then the final :class:`ModelResponse` (tool-call arguments are
        merged from their delta events). Retried like the chat backend's streams."""
        body, options, timeout = self._prepare(request, stream=True)
        readers: list[EventReader] = []

        def new_reader() -> StreamReader:
            readers.append(EventReader())
            return readers[-1]

        async for item in self._stream(
            _responses, options, timeout, estimate_tokens(body), new_reader
        ):
            if isinstance(item, ModelResponse):
                self._remember(item, readers[-1].response_id)
            yield item


def _responses(client: openai.AsyncOpenAI) -> Any:
    return client.responses


def _spent(parsed: tuple[ModelResponse, str | None]) -> int | None:
    return parsed[0].usage.total_tokens or None
