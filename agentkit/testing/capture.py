"""See what the runs in a block of code did, and forbid real model requests in tests.

``capture_run()`` collects the requests, responses, tool calls, messages and usage of every
run started inside it, including runs that raised. ``block_model_requests()`` makes any
request to a real model raise :class:`~agentkit.errors.ModelRequestsBlocked`, while test
doubles and cassette replays keep working.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agentkit.errors import ModelRequestsBlocked
from agentkit.hooks import HookContext, RunHooks, use_hooks
from agentkit.messages import Message, ToolCall
from agentkit.models.base import Model, ModelRequest, ModelResponse
from agentkit.models.wrapping import wrapping_models
from agentkit.usage import Usage

__all__ = [
    "CapturedRun",
    "RunCapture",
    "block_model_requests",
    "capture_run",
    "is_test_double",
    "stays_on_machine",
]


@dataclass(frozen=True, slots=True)
class CapturedRun:
    """One finished run: its whole conversation, its usage, and the error it raised."""

    messages: list[Message]
    usage: Usage
    error: BaseException | None = None


@dataclass(slots=True)
class RunCapture(RunHooks):
    """What :func:`capture_run` collected. Lists are in the order things happened.

    Attributes:
        runs: Every run that ended inside the block (successful or not).
        requests: Every model request that was answered, across all runs.
        responses: Every model response, across all runs (``responses[i]`` answers
            ``requests[i]``).
    """

    runs: list[CapturedRun] = field(default_factory=list)
    requests: list[ModelRequest] = field(default_factory=list)
    responses: list[ModelResponse] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The request each run has in flight (one at a time per run), by its hook context.
    _asked: dict[int, ModelRequest] = field(default_factory=dict, repr=False)

    @property
    def messages(self) -> list[Message]:
        """The messages of every finished run, one run after the other."""
        return [m for run in self.runs for m in run.messages]

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model made inside the block, in order."""
        return [call for response in self.responses for call in response.message.tool_calls]

    @property
    def usage(self) -> Usage:
        """Usage summed over every finished run."""
        total = Usage()
        for run in self.runs:
            total.add(run.usage)
        return total

    @property
    def errors(self) -> list[BaseException]:
        """The errors the runs raised (empty when every run succeeded)."""
        return [run.error for run in self.runs if run.error is not None]

    # run_sync runs on a worker thread, so callbacks may come from several threads.
    def on_model_start(self, ctx: HookContext, request: ModelRequest) -> None:
        """Note the request until its response comes."""
        with self._lock:
            self._asked[id(ctx)] = request

    def on_model_end(self, ctx: HookContext, response: ModelResponse) -> None:
        """Record the request and its response."""
        with self._lock:
            self.requests.append(self._asked.pop(id(ctx)))
            self.responses.append(response)

    def on_run_end(self, ctx: HookContext, result_or_error: Any) -> None:
        """Record the finished run (a copy: the loop owns the originals)."""
        error = result_or_error if isinstance(result_or_error, BaseException) else None
        with self._lock:
            self._asked.pop(id(ctx), None)
            self.runs.append(CapturedRun(list(ctx.messages), ctx.usage.copy(), error))


@contextmanager
def capture_run() -> Iterator[RunCapture]:
    """Collect every request, response, tool call, message and usage of the runs inside.

    >>> with capture_run() as captured:
    ...     agent.run_sync("Weather in Paris?")
    >>> captured.tool_calls[0].name
    'get_weather'
    """
    capture = RunCapture()
    with use_hooks(capture):
        yield capture


def is_test_double(model: Model) -> bool:
    """Whether ``model`` is a test double (``ScriptedModel``, ``FunctionModel``,
    ``TestModel`` or any model class with ``is_test_double = True``)."""
    return bool(getattr(model, "is_test_double", False))


def stays_on_machine(model: Model) -> bool:
    """Whether requests to ``model`` never leave this process: the offline ``LocalModel``
    (free, no network), or an OpenAI-compatible model pointed at a ``FakeOpenAIServer``
    running in this process. Any other server counts as real, even on localhost (a local
    Ollama, or a proxy to a paid API)."""
    local = sys.modules.get("agentkit.models.local")
    if local is not None and isinstance(model, local.LocalModel):
        return True
    base_url = getattr(model, "base_url", None)
    fake = sys.modules.get("agentkit.testing.fake_openai")
    return (
        fake is not None
        and isinstance(base_url, str)
        and fake.is_running_fake_server(base_url)
    )


def _block(model: Model) -> Model:
    # Looks through wrappers (``wrapped``) for the run's own model; a cassette's
    # wrapper (allows_model_requests) replays or deliberately records.
    if isinstance(model, _Blocked):  # nested blockers: one is enough
        return model
    return model if _allowed(model) else _Blocked(model)


def _allowed(model: Model) -> bool:
    link: Model | None = model
    while link is not None:
        if getattr(link, "allows_model_requests", False) or is_test_double(link) or (
            stays_on_machine(link)
        ):
            return True
        # A model made of models (FallbackModel) is safe when every one of them is.
        members = getattr(link, "models", None)
        if isinstance(members, tuple) and members:
            return all(_allowed(member) for member in members)
        link = getattr(link, "wrapped", None)
    return False


class _Blocked(Model):
    """Stands for a real model under :func:`block_model_requests`: every request raises."""

    def __init__(self, model: Model) -> None:
        self.wrapped = model
        self.name = model.name
        self.supports_json_schema = model.supports_json_schema

    async def request(self, request: ModelRequest) -> ModelResponse:
        raise ModelRequestsBlocked(
            f"a request to the real model {self.wrapped!r} was blocked: this code runs under "
            "block_model_requests() (the agentkit pytest plugin's default). Use a test "
            "double (TestModel, ScriptedModel, FunctionModel) with agent.run(..., "
            "model=...), replay a cassette, or mark the test "
            "@pytest.mark.allow_model_requests."
        )


@contextmanager
def block_model_requests() -> Iterator[None]:
    """Make any request that would reach a real model over the network raise
    ModelRequestsBlocked, naming the model.

    Allowed: test doubles, requests a :func:`~agentkit.testing.cassette` inside the block
    replays or records, and models that never leave this machine (see
    :func:`stays_on_machine`).
    """
    with wrapping_models(_block):
        yield
