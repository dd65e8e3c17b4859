"""Run observers: watch the runs in a block of code, and stand in front of their model.

An observer is installed for the current context with :func:`observe`; it applies to every
run started in that context, including runs in tasks it spawns and ``run_sync`` calls.
The testing helpers (``capture_run``, ``block_model_requests``, ``cassette``) are built on
this; it is public so that users can add their own logging or tracing.

Observers only observe (:meth:`RunObserver.on_response`, :meth:`RunObserver.on_run_end`).
A helper that must answer or refuse requests (a cassette replaying, the request blocker)
does it as a model: :meth:`RunObserver.wrap_model` returns a model that wraps the run's.
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

__all__ = ["RunObserver", "active_observers", "observe", "using_observers", "wrap_model"]


class RunObserver:
    """Base class for observers; override the methods you need (each does nothing here)."""

    def wrap_model(self, model: Model) -> Model:
        """Called once at the start of each run with the run's model; the run then sends
        every request to the model returned (by default ``model`` itself).

        Return a model that forwards to ``model`` to record, replay or refuse requests,
        and set its ``wrapped`` attribute to ``model`` so that helpers such as
        ``block_model_requests`` can see what it wraps. The innermost observer (installed
        last) wraps first, so outer observers see its wrapper."""
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


def wrap_model(model: Model, observers: tuple[RunObserver, ...]) -> Model:
    """``model`` wrapped by each of ``observers`` (outermost first), innermost first."""
    for observer in reversed(observers):
        model = observer.wrap_model(model)
    return model


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
