"""Agent: the configuration of a tool-using agent, and its run / run_sync / stream entry points.

An ``Agent`` is cheap to create, holds no per-run state and can serve any number of
concurrent runs. The loop itself lives in :mod:`agentkit.run`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Generic, TypeVar

import anyio

from agentkit.errors import ConfigurationError, RunError
from agentkit.messages import Message, from_openai
from agentkit.models.base import Model
from agentkit.observers import active_observers, using_observers
from agentkit.output import OutputSpec
from agentkit.run import (
    Instructions,
    OnToolError,
    RunEvent,
    RunFinished,
    RunResult,
    RunSpec,
    iterate_run,
)
from agentkit.settings import ModelSettings
from agentkit.tools import Tool, tool
from agentkit.usage import UsageLimits

__all__ = ["Agent", "resolve_model"]

OutputT = TypeVar("OutputT")

InputLike = str | Message | Sequence[Message | Mapping[str, Any]]
HistoryLike = Sequence[Message | Mapping[str, Any]] | None


def resolve_model(model: Model | str | None) -> Model:
    """Turn a model argument into a :class:`Model`.

    ``"local"`` / ``"local:<name>"`` is the bundled offline model; any other string is an
    OpenAI-compatible model name. ``None`` means ``$AGENTKIT_MODEL`` if set, else
    ``gpt-4o-mini`` when ``OPENAI_API_KEY`` is set, else the offline model.
    """
    if isinstance(model, Model):
        return model
    if model is None:
        model = os.environ.get("AGENTKIT_MODEL") or (
            "gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else "local"
        )
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"model must be a model name such as 'gpt-4o-mini' or 'local', or a Model "
            f"instance; got {model!r}"
        )
    if model == "local" or model.startswith("local:"):
        from agentkit.models.local import LocalModel

        name = model.partition(":")[2]
        return LocalModel(name=name) if name else LocalModel()
    from agentkit.models.openai import OpenAIChatModel

    return OpenAIChatModel(model)


class Agent(Generic[OutputT]):
    """A tool-using agent: instructions, a model, tools and an output type.

    Args:
        name: A name for logs and the CLI.
        instructions: The system prompt: a string, or a function (sync or async) of the
            :class:`~agentkit.RunContext` returning one.
        model: A model name (``"gpt-4o-mini"``, ``"local"``) or a :class:`Model`.
            Resolved lazily, on the first run; see :func:`resolve_model` for ``None``.
        tools: Tools, or plain functions (wrapped with ``@tool``).
        output_type: ``str`` (default) or a pydantic model, dataclass, TypedDict, list or
            scalar type the final answer must validate as.
        settings: Default :class:`ModelSettings` for every request.
        max_turns: Most model requests per run before ``MaxTurnsExceeded``.
        usage_limits: Request/token/tool-call limits checked before they are broken.
        output_retries: How many times the model may retry an invalid structured answer.
        on_tool_error: ``"feed"`` tells the model about a tool exception so it can
            recover; ``"raise"`` re-raises it out of the run as a ``ToolError``.
    """

    def __init__(
        self,
        name: str = "agent",
        instructions: Instructions = None,
        model: Model | str | None = None,
        tools: Sequence[Tool[Any, Any] | Any] = (),
        output_type: type[OutputT] | Any = str,
        settings: ModelSettings | None = None,
        max_turns: int = 10,
        *,
        usage_limits: UsageLimits | None = None,
        output_retries: int = 2,
        on_tool_error: OnToolError = "feed",
    ) -> None:
        if max_turns < 1:
            raise ConfigurationError(f"max_turns must be at least 1, got {max_turns}")
        if on_tool_error not in ("feed", "raise"):
            raise ConfigurationError(
                f"on_tool_error must be 'feed' or 'raise', got {on_tool_error!r}"
            )
        self.name = name
        self.instructions = instructions
        self.tools: list[Tool[Any, Any]] = [t if isinstance(t, Tool) else tool(t) for t in tools]
        names = [t.name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(
                f"agent {name!r} has several tools named {', '.join(duplicates)}; "
                "give them distinct names with @tool(name=...)"
            )
        self.output_type = output_type
        self.settings = settings or ModelSettings()
        self.max_turns = max_turns
        self.usage_limits = usage_limits
        self.output_retries = output_retries
        self.on_tool_error: OnToolError = on_tool_error
        self._output = OutputSpec.build(output_type)
        self._model_arg = model
        self._model: Model | None = model if isinstance(model, Model) else None
        self._model_lock = threading.Lock()

    def __repr__(self) -> str:
        model = self._model.name if self._model is not None else self._model_arg
        return f"Agent(name={self.name!r}, model={model!r}, tools={[t.name for t in self.tools]})"

    @property
    def model(self) -> Model:
        """The resolved model (created on first use and then reused)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = resolve_model(self._model_arg)
        return self._model

    def _spec(
        self,
        context: Any,
        max_turns: int | None,
        settings: ModelSettings | None,
        model: Model | str | None,
        usage_limits: UsageLimits | None,
    ) -> RunSpec:
        return RunSpec(
            model=resolve_model(model) if model is not None else self.model,
            tools=self.tools,
            instructions=self.instructions,
            output=self._output,
            settings=self.settings.merge(settings),
            max_turns=max_turns if max_turns is not None else self.max_turns,
            limits=usage_limits if usage_limits is not None else self.usage_limits,
            output_retries=self.output_retries,
            on_tool_error=self.on_tool_error,
            deps=context,
        )

    async def run(
        self,
        input: InputLike,
        *,
        history: HistoryLike = None,
        context: Any = None,
        max_turns: int | None = None,
        settings: ModelSettings | None = None,
        model: Model | str | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> RunResult[OutputT]:
        """Run the agent until the model stops, and return the result.

        Args:
            input: The user's message, or a list of messages (typed or wire dicts).
            history: An earlier conversation to continue (``result.messages`` or wire dicts).
            context: Your dependencies, given to tools and instructions as ``ctx.deps``.
            max_turns: Override the agent's ``max_turns`` for this run.
            settings: Settings merged over the agent's for this run.
            model: Use another model for this run.
            usage_limits: Override the agent's usage limits for this run.
        """
        spec = self._spec(context, max_turns, settings, model, usage_limits)
        async with aclosing(iterate_run(spec, _input(input), _history(history))) as events:
            async for event in events:
                if isinstance(event, RunFinished):
                    result: RunResult[OutputT] = event.result
                    return result
        raise RunError("the run ended without a result")  # pragma: no cover - loop invariant

    def run_sync(
        self,
        input: InputLike,
        *,
        history: HistoryLike = None,
        context: Any = None,
        max_turns: int | None = None,
        settings: ModelSettings | None = None,
        model: Model | str | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> RunResult[OutputT]:
        """Blocking :meth:`run`; also works when called from inside a running event loop
        (e.g. a notebook), by running on a private loop in a worker thread."""

        async def main() -> RunResult[OutputT]:
            return await self.run(
                input,
                history=history,
                context=context,
                max_turns=max_turns,
                settings=settings,
                model=model,
                usage_limits=usage_limits,
            )

        return run_blocking(main)

    async def stream(
        self,
        input: InputLike,
        *,
        history: HistoryLike = None,
        context: Any = None,
        max_turns: int | None = None,
        settings: ModelSettings | None = None,
        model: Model | str | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Run the agent, yielding events as they happen: ``TextDelta``,
        ``ToolCallStarted``, ``ToolResultReceived``, ``ModelResponseFinished`` and finally
        ``RunFinished`` (whose ``result`` is what :meth:`run` would return)."""
        spec = self._spec(context, max_turns, settings, model, usage_limits)
        run = iterate_run(spec, _input(input), _history(history), stream=True)
        async with aclosing(run) as events:
            async for event in events:
                yield event


def _input(value: InputLike) -> str | Message | list[Message]:
    if isinstance(value, (str, Message)):
        return value
    if isinstance(value, Mapping):
        return from_openai([value])[0]
    return from_openai(value)


def _history(value: HistoryLike) -> list[Message]:
    return [] if value is None else from_openai(value)


T = TypeVar("T")


def run_blocking(main: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine function ``main`` to completion from synchronous code.

    Outside an event loop this is ``anyio.run``; inside one (a notebook, an async
    framework calling sync code) it runs on a private loop in a worker thread, because
    the caller's loop cannot be re-entered.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(main)
    outcome: dict[str, Any] = {}
    # The worker thread must see the caller's observers (test helpers, tracing); the rest
    # of the caller's context (e.g. its running-loop markers) must not leak into it.
    observers = active_observers()

    def worker() -> None:
        try:
            with using_observers(observers):
                outcome["value"] = anyio.run(main)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=worker, name="agentkit-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
