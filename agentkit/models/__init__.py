"""Model backends: the :class:`Model` interface, OpenAI-compatible servers (chat completions
and Responses), fallbacks, the offline model, and moderation.

The backends are imported lazily so that ``import agentkit``
does not pay for ``openai`` or the llama.cpp runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    ToolDefinition,
)

if TYPE_CHECKING:
    from agentkit.models.fallback import FallbackModel
    from agentkit.models.local import LocalModel
    from agentkit.models.moderation import ModerationResult, OpenAIModeration
    from agentkit.models.openai import OpenAIChatModel, hash_user_id
    from agentkit.models.responses import OpenAIResponsesModel
    from agentkit.retry import RateLimit, RetryPolicy

__all__ = [
    "FallbackModel",
    "LocalModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModerationResult",
    "OpenAIChatModel",
    "OpenAIModeration",
    "OpenAIResponsesModel",
    "RateLimit",
    "RetryPolicy",
    "StreamItem",
    "TextDelta",
    "ToolDefinition",
    "hash_user_id",
]

_LAZY = {
    "OpenAIChatModel": "agentkit.models.openai",
    "OpenAIResponsesModel": "agentkit.models.responses",
    "FallbackModel": "agentkit.models.fallback",
    "OpenAIModeration": "agentkit.models.moderation",
    "ModerationResult": "agentkit.models.moderation",
    "hash_user_id": "agentkit.models.openai",
    "LocalModel": "agentkit.models.local",
    "RetryPolicy": "agentkit.retry",
    "RateLimit": "agentkit.retry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit.models' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
