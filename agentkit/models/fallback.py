"""FallbackModel: ask the next model when one is down, overloaded or rate limited."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from agentkit.errors import ConfigurationError, ModelConnectionError, ModelHTTPError
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    closing_stream,
)

__all__ = ["FallbackModel", "should_fall_back"]

logger = logging.getLogger("agentkit")


def should_fall_back(error: Exception) -> bool:
    """The default ``on=`` rule: connection failures and timeouts, HTTP 5xx and 429
    (rate limit or quota), each once the model's own retries are spent. Other 4xx answers
    (a bad request, a bad key, an unknown model) would fail on any model: they do not
    fall back."""
    if isinstance(error, ModelConnectionError):
        return True
    return isinstance(error, ModelHTTPError) and (error.status == 429 or error.status >= 500)


class FallbackModel(Model):
    """Try ``primary``; when it fails as ``on`` says, try each of ``fallbacks`` in turn.

    Each model first exhausts its own retry policy. The response's ``model_name`` (and
    ``RunResult.model_name``) tells which model answered; its usage counts the requests of
    the models that failed before it. A stream falls back only while no text has reached
    the caller; after that the error is raised.

    Args:
        primary: The model to try first.
        fallbacks: The models to try next, in order.
        on: ``fn(error) -> bool``: whether an error moves on to the next model (default
            :func:`should_fall_back`), or a tuple of exception classes.
    """

    def __init__(
        self,
        primary: Model,
        *fallbacks: Model,
        on: Callable[[Exception], bool] | tuple[type[Exception], ...] = should_fall_back,
    ) -> None:
        models = (primary, *fallbacks)
        for model in models:
            if not isinstance(model, Model):
                raise ConfigurationError(
                    f"FallbackModel takes Model instances, got {type(model).__name__}: "
                    f"{model!r:.100}; wrap names, e.g. OpenAIChatModel('gpt-4o-mini') or "
                    "OpenAIResponsesModel('gpt-4o')"
                )
        if not fallbacks:
            raise ConfigurationError(
                "FallbackModel needs at least one fallback model: FallbackModel(primary, "
                "backup)"
            )
        self.models = models
        self.name = "fallback(" + ", ".join(m.name for m in models) + ")"
        # The run decides the structured-output strategy once for all of them.
        self.supports_json_schema = all(m.supports_json_schema for m in models)
        self._on = on

    def _falls_back(self, error: Exception) -> bool:
        if isinstance(self._on, tuple):
            return isinstance(error, self._on)
        return self._on(error)

    def _next(self, model: Model, error: Exception, index: int) -> None:
        logger.warning(
            "agentkit: model %s failed (%s: %.200s); falling back to %s",
            model.name, type(error).__name__, error, self.models[index + 1].name,
        )

    @staticmethod
    def _answered(response: ModelResponse, model: Model, failed_requests: int) -> ModelResponse:
        response.usage.requests += failed_requests
        if response.model_name is None:
            return replace(response, model_name=model.name)
        return response

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Ask each model in turn until one answers or fails in a way ``on`` refuses."""
        failed_requests = 0
        last = len(self.models) - 1
        for index, model in enumerate(self.models):
            try:
                response = await model.request(request)
            except Exception as exc:
                if index == last or not self._falls_back(exc):
                    raise
                failed_requests += getattr(exc, "requests_answered", 0) or 0
                self._next(model, exc, index)
                continue
            return self._answered(response, model, failed_requests)
        raise AssertionError("unreachable: the last model returns or raises")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream from each model in turn; a model fails over only before its first
        text delta."""
        failed_requests = 0
        last = len(self.models) - 1
        for index, model in enumerate(self.models):
            started = False
            try:
                async with closing_stream(model.stream(request)) as items:
                    async for item in items:
                        if isinstance(item, TextDelta):
                            started = True
                            yield item
                        else:
                            yield self._answered(item, model, failed_requests)
                return
            except Exception as exc:
                if started or index == last or not self._falls_back(exc):
                    raise
                failed_requests += getattr(exc, "requests_answered", 0) or 0
                self._next(model, exc, index)
