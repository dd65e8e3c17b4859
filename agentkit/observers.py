"""Run observers: see (and, for test doubles, answer) every model request of the runs in a
block of code.

An observer is installed for the current context with :func:`observe`; it applies to every
run started in that context, including runs in tasks it spawns and ``run_sync`` calls.
The testing helpers (``capture_run``, ``block_model_requests``, ``cassette``) are built on
this; it is public so that users can add their own logging or tracing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentkit.messages import Message
    from agentkit.models.base import Model, ModelRequest, ModelResponse
    from agentkit.usage import Usage

__all__ = ["RunObserver", "active_observers", "observe", "using_observers"]


class RunObserver:
    """Base class for observers; override the methods you need (each does nothing here)."""

    def on_request(self, model: Model, request: ModelRequest) -> ModelResponse | None:
        """Called before each model request. Raise to forbid it; return a response to
        answer it without calling the model (the first observer that answers wins)."""
        return None

    def wrap_model(self, model: Model) -> Model:
        """Called once when a run starts: return the model the run should use instead."""
        return model

    def on_response(self, model: Model, request: ModelRequest, response: ModelResponse) -> None:
        """Called after each model response, with the request it answers (tool-call ids
        already normalised, as the run stores them)."""

    def on_run_end(
        self, messages: list[Message], usage: Usage, error: BaseException | None
    ) -> None:
        """Called once when a run ends, successfully (``error`` None) or not."""


_observers: ContextVar[tuple[RunObserver, ...]] = ContextVar("agentkit_observers", default=())


def active_observers() -> tuple[RunObserver, ...]:
    """The observers installed in the current context, outermost first."""
    return _observers.get()


@contextmanager
def observe(observer: RunObserver) -> Iterator[RunObserver]:
    """Install ``observer`` for the runs started inside the ``with`` block."""
    token = _observers.set((*_observers.get(), observer))
    try:
        yield observer
    finally:
        _observers.reset(token)


@contextmanager
def using_observers(observers: tuple[RunObserver, ...]) -> Iterator[None]:
    """Install exactly ``observers`` (e.g. those of another thread's context)."""
    token = _observers.set(observers)
    try:
        yield
    finally:
        _observers.reset(token)
