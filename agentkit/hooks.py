"""Run hooks: callbacks that watch runs (start and end, each model request, each tool
call, each handoff) without changing them.

Give hooks to one agent with ``Agent(hooks=[MyHooks()])``, or to every run started in a
block of code with :func:`use_hooks` (the testing helper ``capture_run`` and
:func:`agentkit.tracing.instrument` are built on this). Every method is optional and may
be sync or async. A hook that raises stops the run with :class:`~agentkit.errors.HookError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit._secrets import redact
from agentkit.errors import HookError
from agentkit.tools import RunContext

if TYPE_CHECKING:
    from agentkit.agent import Agent
    from agentkit.messages import ToolCall
    from agentkit.models.base import Model, ModelRequest, ModelResponse
    from agentkit.run import RunResult
    from agentkit.tools import ToolResult

__all__ = ["HookContext", "RunHooks", "active_hooks", "use_hooks", "using_hooks"]


@dataclass(slots=True)
class HookContext(RunContext[Any]):
    """What a hook sees of the run: a :class:`~agentkit.RunContext` (``deps``, ``usage``,
    ``messages``, ``turn``) that stays the same object for the whole run, plus:

    Attributes:
        agent: The active :class:`~agentkit.Agent` (None for a run without one).
        agent_name: Its name.
        model: The active agent's model.
        thread_id: The stored thread the run is on (None without one).
    """

    agent: Agent[Any] | None = None
    agent_name: str = "agent"
    model: Model | None = None
    thread_id: str | None = None


class RunHooks:
    """Callbacks on the life of a run. Subclass and override what you need; each method
    may be ``def`` or ``async def``. Hooks observe: what they return is ignored, and one
    that raises stops the run with :class:`~agentkit.errors.HookError`.

    Every method gets ``ctx``, the run's :class:`HookContext`, the same object from
    ``on_run_start`` to ``on_run_end``.
    """

    def on_run_start(self, ctx: HookContext) -> Any:
        """The run starts (or resumes); ``ctx.messages`` holds the input."""

    def on_model_start(self, ctx: HookContext, request: ModelRequest) -> Any:
        """A request is about to go to ``ctx.model``."""

    def on_model_end(self, ctx: HookContext, response: ModelResponse) -> Any:
        """The model answered (tool-call ids already made unique, as the run stores them)."""

    def on_tool_start(self, ctx: HookContext, call: ToolCall) -> Any:
        """A tool call is about to run (concurrent calls: in the task that runs it)."""

    def on_tool_end(self, ctx: HookContext, call: ToolCall, result: ToolResult) -> Any:
        """A tool call finished, successfully or not (``result.is_error``)."""

    def on_handoff(self, ctx: HookContext, from_agent: Agent[Any], to_agent: Agent[Any]) -> Any:
        """The run switches from ``from_agent`` to ``to_agent``."""

    def on_run_end(self, ctx: HookContext, result_or_error: RunResult[Any] | BaseException) -> Any:
        """The run ended: its result (also when it waits, ``status="requires_action"``),
        or the exception it raised. Called once per run, even one that failed before
        ``on_run_start``."""


_HOOK_NAMES = (
    "on_run_start", "on_model_start", "on_model_end", "on_tool_start", "on_tool_end",
    "on_handoff", "on_run_end",
)  # fmt: skip

_context_hooks: ContextVar[tuple[Any, ...]] = ContextVar("agentkit_hooks", default=())
# Opt-in process-wide hooks (agentkit.tracing.instrument installs its tracer here).
_global_hooks: list[Any] = []


def active_hooks() -> tuple[Any, ...]:
    """The hooks for a run started here: process-wide ones, then those of :func:`use_hooks`
    blocks, outermost first."""
    installed = _context_hooks.get()
    return (*_global_hooks, *installed) if _global_hooks else installed


@contextmanager
def use_hooks(*hooks: RunHooks) -> Iterator[None]:
    """Give ``hooks`` to every run started inside the ``with`` block (including runs in
    tasks it spawns, and ``run_sync``)."""
    token = _context_hooks.set((*_context_hooks.get(), *hooks))
    try:
        yield
    finally:
        _context_hooks.reset(token)


@contextmanager
def using_hooks(hooks: tuple[Any, ...]) -> Iterator[None]:
    """Install exactly ``hooks`` from :func:`use_hooks` blocks (e.g. another thread's)."""
    token = _context_hooks.set(tuple(h for h in hooks if h not in _global_hooks))
    try:
        yield
    finally:
        _context_hooks.reset(token)


def add_global_hooks(hooks: Any) -> None:
    """Give ``hooks`` to every run in the process (opt-in; see ``agentkit.tracing``)."""
    if hooks not in _global_hooks:
        _global_hooks.append(hooks)


def remove_global_hooks(hooks: Any) -> None:
    """Undo :func:`add_global_hooks`."""
    if hooks in _global_hooks:
        _global_hooks.remove(hooks)


class HookCaller:
    """The hooks of one run, with the methods each actually defines looked up once."""

    __slots__ = ("_methods", "ctx")

    def __init__(self, hooks: Sequence[Any], ctx: HookContext) -> None:
        self.ctx = ctx
        self._methods: dict[str, list[Any]] = {}
        for name in _HOOK_NAMES:
            base = getattr(RunHooks, name)
            methods = [
                getattr(hook, name)
                for hook in hooks
                if getattr(type(hook), name, base) is not base and hasattr(hook, name)
            ]
            if methods:
                self._methods[name] = methods

    def __bool__(self) -> bool:
        return bool(self._methods)

    def wants(self, name: str) -> bool:
        """Whether any hook defines ``name``."""
        return name in self._methods

    async def call(self, name: str, *args: Any) -> None:
        """Call every hook's ``name`` with ``(ctx, *args)``, in order."""
        for method in self._methods.get(name, ()):
            try:
                value = method(self.ctx, *args)
                if inspect.isawaitable(value):
                    await value
            except Exception as exc:
                owner = type(getattr(method, "__self__", method)).__qualname__
                raise HookError(
                    f"the run hook {owner}.{name} raised {type(exc).__name__}: "
                    f"{redact(str(exc))}; the run stopped there. Hooks observe: catch "
                    "errors inside the hook if the run should go on"
                ) from exc
