"""Test doubles and helpers for testing agents offline.

``ScriptedModel`` and ``FunctionModel`` replace a real model in tests;
``FakeOpenAIServer`` is a real OpenAI-compatible HTTP server on 127.0.0.1 for end-to-end
tests of code that talks to OpenAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit.testing.models import (
    FunctionModel,
    ScriptedModel,
    ScriptItem,
    text_response,
    tool_call_response,
)

if TYPE_CHECKING:
    from agentkit.testing.fake_openai import FakeOpenAIServer

__all__ = [
    "FakeOpenAIServer",
    "FunctionModel",
    "ScriptItem",
    "ScriptedModel",
    "text_response",
    "tool_call_response",
]

_LAZY = {"FakeOpenAIServer": "agentkit.testing.fake_openai"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
