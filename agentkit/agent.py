"""Agent: the configuration of a tool-using agent, and its run / run_sync / stream entry points.

An ``Agent`` is cheap to create, holds no per-run state and can serve any number of
concurrent runs. The loop itself lives in :mod:`agentkit.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from typing_extensions import Unpack

from agentkit.errors import ConfigurationError, RunError
from agentkit.history import HistoryPolicy
from agentkit.hooks import RunHooks, active_hooks, using_hooks
from agentkit.messages import Message, from_openai
from agentkit.models.base import Model
from agentkit.models.wrapping import active_wrappers, using_wrappers
from agentkit.output import OutputSpec
from agentkit.run import (
    Instructions,
    OnToolError,
    RunEvent,
    RunFinished,
    RunResult,
    RunSpec,
    RunState,
    iterate_run,
)
from agentkit.settings import ModelSettings
from agentkit.tools import Tool, tool
from agentkit.usage import UsageLimits

if TYPE_CHECKING:
    from agentkit.cache import ResponseCache
    from agentkit.guardrails import Guardrail
    from agentkit.handoffs import AgentTool, Handoff
    from agentkit.run import HandoffRoute
    from agentkit.run import RunResult as _RunResult
    from agentkit.threads import Store

__all__ = ["Agent", "RunOptions", "resolve_model"]

OutputT = TypeVar("OutputT")
# What a model name resolves through: a change means a new model object.
_MODEL_ENVIRONMENT = (
    "AGENTKIT_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)

InputLike = str | Message | Sequence[Message | Mapping[str, Any]]
HistoryLike = Sequence[Message | Mapping[str, Any]] | None


class RunOptions(TypedDict, total=False):
    """The per-run options of ``Agent.run``, ``run_sync``, ``stream`` and ``resume``.

    Attributes:
        history: An earlier conversation to continue (``result.messages`` or wire dicts).
        context: Your dependencies, given to tools and instructions as ``ctx.deps``.
        max_turns: Override the agent's ``max_turns`` for this run.
        settings: Settings merged over the agent's for this run.
        model: Use another model for this run.
        usage_limits: Override the agent's usage limits for this run.
        timeout: Seconds the whole run may take; past it the run stops with
            :class:`~agentkit.errors.RunTimeout` (messages and state attached).
        thread: The id of a stored thread to run on: its messages are the history and
            every step is stored (needs ``store``).
        store: The thread store (default: the agent's).
    """

    history: HistoryLike
    context: Any
    max_turns: int | None
    settings: ModelSettings | None
    model: Model | str | None
    usage_limits: UsageLimits | None
    timeout: float | None
    thread: str | None
    store: Store | None


def resolve_model(model: Model | str | None) -> Model:
    """Turn a model argument into a :class:`Model`.

    ``"local"`` / ``"local:<name>"`` is the bundled offline model; ``"responses:<name>"``
    is ``OpenAIResponsesModel(name)``; any other string is an OpenAI-compatible
    chat-completions model name. ``None`` means ``$AGENTKIT_MODEL`` if set, else
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
    if model.startswith("responses:"):
        from agentkit.models.responses import OpenAIResponsesModel

        name = model.partition(":")[2].strip()
        if not name:
            raise ConfigurationError(
                f"{model!r} names no model: write 'responses:<model name>', e.g. "
                "'responses:gpt-4o-mini'"
            )
        return OpenAIResponsesModel(name)
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
        store: The thread store runs use when given ``thread=`` (see
            :mod:`agentkit.threads`).
        history_policy: What of a long conversation is sent (``keep_last(n)``,
            ``keep_tokens(n)`` from :mod:`agentkit.history`, or your own function); the
            run's messages keep everything.
        description: What the agent does, for other agents: the description of the
            tools that hand off to it or call it (:meth:`as_tool`).
        handoffs: Agents (or ``handoff(agent, ...)`` from :mod:`agentkit.handoffs`) this
            agent may hand the conversation to, one ``transfer_to_<name>`` tool each.
        hooks: :class:`~agentkit.RunHooks` that watch the runs of this agent (the whole
            run, across handoffs, for the agent a run starts with).
        guardrails: Input, output and tool-output guardrails (see
            :mod:`agentkit.guardrails`); a trip raises ``GuardrailTripped``.
        cache: A :class:`~agentkit.cache.ResponseCache` answering repeated deterministic
            requests without calling the model.
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
        history_policy: HistoryPolicy | None = None,
        store: Store | None = None,
        description: str | None = None,
        handoffs: Sequence[Agent[Any] | Handoff] = (),
        hooks: Sequence[RunHooks] = (),
        guardrails: Sequence[Guardrail] = (),
        cache: ResponseCache | None = None,
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
        self.history_policy = history_policy
        self.store = store
        self.description = description
        self.handoffs: list[Agent[Any] | Handoff] = list(handoffs)
        self.hooks: list[RunHooks] = list(hooks)
        self._handoff_parts: tuple[tuple[Any, ...], list[Tool[Any, Any]],
                                   dict[str, HandoffRoute]] | None = None
        if self.handoffs:
            self._handoff_tools()  # a misconfiguration fails here, not at the first run
        self.guardrails = list(guardrails)
        if self.guardrails:
            _check_guardrails(self.guardrails)
        self.cache = cache
        self._output = OutputSpec.build(output_type)
        self._model_arg = model
        self._model: Model | None = model if isinstance(model, Model) else None
        self._resolved: tuple[tuple[str | None, ...], Model] | None = None

    def __repr__(self) -> str:
        model = self._model.name if self._model is not None else self._model_arg
        return f"Agent(name={self.name!r}, model={model!r}, tools={[t.name for t in self.tools]})"

    @property
    def model(self) -> Model:
        """The resolved model: created on first use, and again when the environment it
        was resolved from (``OPENAI_*``, ``AGENTKIT_MODEL``) changes, e.g. between tests."""
        if self._model is not None:
            return self._model
        key = tuple(os.environ.get(name) for name in _MODEL_ENVIRONMENT)
        resolved = self._resolved
        if resolved is None or resolved[0] != key:
            resolved = (key, resolve_model(self._model_arg))
            self._resolved = resolved
        return resolved[1]

    def _handoff_tools(self) -> tuple[list[Tool[Any, Any]], dict[str, HandoffRoute]]:
        key = tuple(self.handoffs)
        if self._handoff_parts is None or self._handoff_parts[0] != key:
            from agentkit.handoffs import handoff_parts

            tools, routes = handoff_parts(self.name, key, [t.name for t in self.tools])
            self._handoff_parts = (key, tools, routes)
        return self._handoff_parts[1], self._handoff_parts[2]

    def as_tool(
        self,
        name: str | None = None,
        description: str | None = None,
        output_extractor: Callable[[_RunResult[Any]], str] | None = None,
    ) -> AgentTool:
        """This agent as a tool another agent can call, with one string argument,
        ``input``. The inner run's usage is added to the caller's; its messages are not
        merged into the caller's conversation (the tool result's ``value`` is the inner
        :class:`~agentkit.RunResult`, in ``ToolResultReceived`` events and hooks).

        Args:
            name: The tool's name (default: the agent's name).
            description: What the tool does (default: the agent's ``description``).
            output_extractor: The text the calling model reads of the inner result
                (default: its output, as text or JSON).
        """
        from agentkit.handoffs import agent_tool

        return agent_tool(self, name, description, output_extractor)

    def _spec(self, options: RunOptions) -> RunSpec:
        model = options.get("model")
        limits = options.get("usage_limits")
        max_turns = options.get("max_turns")
        tools: Sequence[Tool[Any, Any]] = self.tools
        routes: dict[str, HandoffRoute] = {}
        if self.handoffs:
            extra, routes = self._handoff_tools()
            tools = [*self.tools, *extra]

        def find_agent(name: str) -> RunSpec:
            from agentkit.handoffs import reachable

            agents = reachable(self)
            if name not in agents:
                raise ConfigurationError(
                    f"the run is with agent {name!r}, which agent {self.name!r} cannot hand "
                    f"off to (it reaches: {', '.join(sorted(agents))}); resume the run with "
                    "the agent that started it"
                )
            return agents[name]._spec(options)

        resolved = resolve_model(model) if model is not None else self.model
        return RunSpec(
            model=resolved if self.cache is None else self.cache.wrap(resolved),
            tools=tools,
            instructions=self.instructions,
            output=self._output,
            settings=self.settings.merge(options.get("settings")),
            max_turns=max_turns if max_turns is not None else self.max_turns,
            limits=limits if limits is not None else self.usage_limits,
            output_retries=self.output_retries,
            on_tool_error=self.on_tool_error,
            deps=options.get("context"),
            timeout=options.get("timeout"),
            history_policy=self.history_policy,
            agent=self,
            hooks=self.hooks,
            handoffs=routes,
            find_agent=find_agent if self.handoffs else None,
            guardrails=self.guardrails,
        )

    def _events(
        self, input: InputLike | RunState, options: RunOptions, stream: bool
    ) -> AsyncGenerator[RunEvent, None]:
        spec = self._spec(options)
        thread = options.get("thread")
        store = options.get("store") or self.store
        if thread is not None:
            if store is None:
                raise ConfigurationError(
                    f"thread={thread!r} needs a store: pass store=SQLiteStore('agentkit.db') "
                    "(from agentkit.threads) to the run or to Agent(store=...)"
                )
            if isinstance(input, RunState):
                raise ConfigurationError(
                    "a run on a thread resumes by its run id: agent.resume(run_id, store=...)"
                )
            if options.get("history") is not None:
                raise ConfigurationError(
                    "history= and thread= were both given: a thread's history is its stored "
                    "messages; drop history=, or append those messages to the thread first"
                )
            # Imported here: threads is a capability built on the agent, not below it.
            from agentkit.threads.runner import run_on_thread

            return run_on_thread(self.name, spec, _input(input), thread, store, stream=stream)
        if isinstance(input, RunState):
            return iterate_run(spec, stream=stream, state=input)
        return iterate_run(spec, _input(input), _history(options.get("history")), stream=stream)

    async def run(
        self, input: InputLike | RunState, **options: Unpack[RunOptions]
    ) -> RunResult[OutputT]:
        """Run the agent until the model stops, and return the result.

        Args:
            input: The user's message, or a list of messages (typed or wire dicts), or
                the :class:`RunState` of a run to continue (see :meth:`resume`).
            **options: See :class:`RunOptions`: ``history``, ``context``, ``max_turns``,
                ``settings``, ``model``, ``usage_limits``, ``timeout``.
        """
        return await _drain(self._events(input, options, stream=False))

    async def resume(
        self,
        run: RunState | str,
        *,
        approve: Sequence[str] = (),
        reject: Mapping[str, str] | None = None,
        outputs: Mapping[str, Any] | None = None,
        **options: Unpack[RunOptions],
    ) -> RunResult[OutputT]:
        """Continue a run until the model stops again: a saved :class:`RunState`
        (``result.state``, ``error.state``, or ``RunState.from_json(...)`` in another
        process), or the id of a stored run waiting with ``requires_action``
        (``result.run_id``; pass ``store=`` unless the agent has one).

        A run that stopped with ``status="requires_action"`` continues with decisions on
        its ``pending`` calls: ``approve`` (ids to run), ``reject`` (id → the reason the
        model reads) and ``outputs`` (id → the output of an external tool; not a string:
        sent as JSON). A call left undecided keeps waiting. ``history`` is ignored (the
        state holds the conversation); the other options apply to the rest of the run.

        Raises:
            NotPending: a decision names a call the run is not waiting for.
            RunStatusError: the stored run is not waiting.
        """
        if isinstance(run, RunState):
            run = run.copy()  # the caller's state (and earlier results) stay as they were
            run.decide(approve, reject, outputs)
            return await self.run(run, **options)
        store = options.get("store") or self.store
        if store is None:
            raise ConfigurationError(
                f"resuming run {run!r} by id needs its store: pass store=... (or give the "
                "agent one with Agent(store=...))"
            )
        from agentkit.threads.runner import resume_on_thread

        events = resume_on_thread(
            self.name, self._spec(options), run, store,
            approve=approve, reject=reject, outputs=outputs,
        )  # fmt: skip
        return await _drain(events)

    def run_sync(
        self, input: InputLike | RunState, **options: Unpack[RunOptions]
    ) -> RunResult[OutputT]:
        """Blocking :meth:`run`; also works when called from inside a running event loop
        (e.g. a notebook), by running on a private loop in a worker thread. Ctrl-C
        cancels the run."""
        return run_blocking(lambda: self.run(input, **options))

    async def stream(
        self, input: InputLike | RunState, **options: Unpack[RunOptions]
    ) -> AsyncIterator[RunEvent]:
        """Run the agent, yielding events as they happen: ``TextDelta``,
        ``ToolCallStarted``, ``ToolResultReceived``, ``ModelResponseFinished`` and finally
        ``RunFinished`` (whose ``result`` is what :meth:`run` would return)."""
        async with aclosing(self._events(input, options, stream=True)) as events:
            async for event in events:
                yield event


def _check_guardrails(guardrails: Sequence[Guardrail]) -> None:
    from agentkit.guardrails import Guardrail  # a capability above the agent: on use

    for guardrail in guardrails:
        if not isinstance(guardrail, Guardrail):
            raise ConfigurationError(
                f"guardrails= takes guardrails, got {guardrail!r}; decorate the function "
                "with @input_guardrail, @output_guardrail or @tool_output_guardrail (from "
                "agentkit.guardrails), or call a built-in such as no_secrets()"
            )


async def _drain(events: AsyncGenerator[RunEvent, None]) -> RunResult[Any]:
    async with aclosing(events):
        async for event in events:
            if isinstance(event, RunFinished):
                return event.result
    raise RunError("the run ended without a result")  # pragma: no cover - loop invariant


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
    the caller's loop cannot be re-entered. Either way, Ctrl-C (or cancellation of the
    calling task) cancels the run: no model request or tool call starts afterwards.
    """
    try:
        asyncio.get_running_loop()
        inside = True
    except RuntimeError:
        inside = False
    if not inside:
        # Outside the except block above: errors of the run must not be chained to it.
        return anyio.run(main)
    return _run_in_thread(main, asyncio.current_task())


def _run_in_thread(main: Callable[[], Awaitable[T]], caller: asyncio.Task[Any] | None) -> T:
    outcome: dict[str, Any] = {}
    done = threading.Event()
    cancel_lock = threading.Lock()
    running: list[tuple[anyio.CancelScope, Any]] = []
    interrupted = False
    # The worker thread must see the caller's hooks and model wrappers (test helpers); the
    # rest of the caller's context (e.g. its running-loop markers) must not leak into it.
    hooks, wrappers = active_hooks(), active_wrappers()

    async def guarded() -> T:
        with anyio.CancelScope() as scope:
            with cancel_lock:
                running.append((scope, anyio.lowlevel.current_token()))
                if interrupted:
                    scope.cancel()
            return await main()
        raise KeyboardInterrupt  # cancelled by the caller

    def worker() -> None:
        try:
            with using_hooks(hooks), using_wrappers(wrappers):
                outcome["value"] = anyio.run(guarded)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    # Under asyncio.run (3.11+), Ctrl-C cancels the main task instead of raising; this
    # thread blocks that task, so it must notice a new cancellation request itself.
    cancelling: Callable[[], int] = getattr(caller, "cancelling", lambda: 0)
    before = cancelling()
    threading.Thread(target=worker, name="agentkit-run-sync", daemon=True).start()
    try:
        while not done.wait(0.1):
            if cancelling() > before:
                raise asyncio.CancelledError
    except BaseException:
        with cancel_lock:
            interrupted = True
            for scope, token in running:
                with contextlib.suppress(Exception):  # the run may have just ended
                    anyio.from_thread.run_sync(scope.cancel, token=token)
        done.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
