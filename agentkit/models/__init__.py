"""Model backends: the :class:`Model` interface, OpenAI-compatible servers, the offline model.

``OpenAIChatModel`` and ``LocalModel`` are imported lazily so that ``import agentkit``
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
    from agentkit.models.local import LocalModel
    from agentkit.models.openai import OpenAIChatModel, hash_user_id
    from agentkit.retry import RateLimit, RetryPolicy

__all__ = [
    "LocalModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OpenAIChatModel",
    "RateLimit",
    "RetryPolicy",
    "StreamItem",
    "TextDelta",
    "ToolDefinition",
    "hash_user_id",
]

_LAZY = {
    "OpenAIChatModel": "agentkit.models.openai",
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
