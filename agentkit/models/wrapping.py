"""Stand in front of the model of every run started in a block of code.

A *model wrapper* is a function ``(model) -> model``. Installed with
:func:`wrapping_models`, it is applied once to the model of each run started inside the
``with`` block (and to each agent's model after a handoff), including runs in tasks the
block spawns and ``run_sync`` calls. The testing helpers are built on this: a cassette
returns a model that records or replays, ``block_model_requests`` one that refuses.

A wrapper returns a model that forwards to the one it got, and sets that model as its
``wrapped`` attribute so that other wrappers (the request blocker) can see what is inside.
Wrappers only change which model answers; to *watch* runs, use
:class:`~agentkit.RunHooks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from agentkit.models.base import Model

__all__ = ["ModelWrapper", "active_wrappers", "using_wrappers", "wrap", "wrapping_models"]

ModelWrapper = Callable[[Model], Model]
"""A function that returns the model a run should use instead of the one it got."""

_wrappers: ContextVar[tuple[ModelWrapper, ...]] = ContextVar("agentkit_model_wrappers",
                                                             default=())


def active_wrappers() -> tuple[ModelWrapper, ...]:
    """The wrappers installed in the current context, outermost first."""
    return _wrappers.get()


def wrap(model: Model, wrappers: tuple[ModelWrapper, ...] | None = None) -> Model:
    """``model`` seen through ``wrappers`` (default: those installed here). The innermost
    wrapper (installed last) applies first, so outer ones see its wrapper."""
    for wrapper in reversed(active_wrappers() if wrappers is None else wrappers):
        model = wrapper(model)
    return model


@contextmanager
def wrapping_models(wrapper: ModelWrapper) -> Iterator[ModelWrapper]:
    """Apply ``wrapper`` to the model of every run started inside the ``with`` block."""
    token = _wrappers.set((*_wrappers.get(), wrapper))
    try:
        yield wrapper
    finally:
        _wrappers.reset(token)


@contextmanager
def using_wrappers(wrappers: tuple[ModelWrapper, ...]) -> Iterator[None]:
    """Install exactly ``wrappers`` (e.g. those of another thread's context)."""
    token = _wrappers.set(wrappers)
    try:
        yield
    finally:
        _wrappers.reset(token)
