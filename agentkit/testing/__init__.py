"""Test doubles and helpers for testing agents offline.

``ScriptedModel``, ``FunctionModel`` and ``TestModel`` replace a real model in tests;
``FakeOpenAIServer`` is a real OpenAI-compatible HTTP server on 127.0.0.1 for end-to-end
tests of code that talks to OpenAI; ``cassette`` records and replays model traffic;
``capture_run`` and ``block_model_requests`` watch and police the runs in a block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit.testing.assertions import assert_called_tool, assert_no_tool_errors
from agentkit.testing.capture import CapturedRun, RunCapture, block_model_requests, capture_run
from agentkit.testing.models import (
    FunctionModel,
    ScriptedModel,
    ScriptItem,
    text_response,
    tool_call_response,
)
from agentkit.testing.test_model import TestModel

if TYPE_CHECKING:
    from agentkit.testing.cassettes import Cassette, cassette
    from agentkit.testing.fake_openai import FakeOpenAIServer

__all__ = [
    "CapturedRun",
    "Cassette",
    "FakeOpenAIServer",
    "FunctionModel",
    "RunCapture",
    "ScriptItem",
    "ScriptedModel",
    "TestModel",
    "assert_called_tool",
    "assert_no_tool_errors",
    "block_model_requests",
    "capture_run",
    "cassette",
    "text_response",
    "tool_call_response",
]

# Loaded on first use, so importing the test doubles stays light (no HTTP stack).
_LAZY = {
    "Cassette": "agentkit.testing.cassettes",
    "cassette": "agentkit.testing.cassettes",
    "FakeOpenAIServer": "agentkit.testing.fake_openai",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
