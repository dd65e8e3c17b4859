"""The agent loop, as explicit steps over a :class:`RunState`.

A run is a sequence of steps: *request the model* (and handle its response), then *run the
tools* it called, until the state says *done*. Between two steps the state is plain data
(:meth:`RunState.to_json`), so a run can stop after any step (an error, a timeout, a
process that exits) and be resumed later, anywhere, with the same result.

This module knows nothing of :class:`~agentkit.Agent`; it takes the parts (a model, tools,
instructions, settings, limits) as a :class:`RunSpec`. :func:`iterate_run` drives the
steps and yields :data:`RunEvent` values whose last one is :class:`RunFinished`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager, aclosing, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import anyio

from agentkit._secrets import redact
from agentkit.errors import (
    AgentkitError,
    ConfigurationError,
    ContentFiltered,
    GuardrailTripped,
    MaxTurnsExceeded,
    ModelError,
    NotPending,
    OutputTruncated,
    OutputValidationError,
    RunError,
    RunTimeout,
    ToolArgumentsError,
    ToolCallError,
    ToolChoiceIgnored,
    ToolRetriesExceeded,
    UnknownToolError,
    UsageLimitExceeded,
)
from agentkit.history import HistoryPolicy
from agentkit.hooks import HookCaller, HookContext, RunHooks, active_hooks
from agentkit.messages import Message, ToolCall, to_openai, to_saved
from agentkit.models.base import Model, ModelRequest, ModelResponse, TextDelta, closing_stream
from agentkit.models.wrapping import active_wrappers, wrap
from agentkit.output import FINAL_RESULT_TOOL, OutputSpec
from agentkit.settings import ModelSettings
from agentkit.tools import RunContext, Tool, ToolResult
from agentkit.usage import Usage, UsageLimits

if TYPE_CHECKING:
    from agentkit.agent import Agent
    from agentkit.guardrails import Guardrail

__all__ = [
    "HandoffOccurred",
    "HandoffRoute",
    "ModelResponseFinished",
    "PendingCall",
    "RunEvent",
    "RunFinished",
    "RunResult",
    "RunSpec",
    "RunState",
    "RunStatus",
    "TextDelta",
    "ToolCallStarted",
    "ToolResultReceived",
    "iterate_run",
]

logger = logging.getLogger("agentkit")

OutputT = TypeVar("OutputT")
Instructions = str | Callable[[RunContext[Any]], str | Awaitable[str]] | None
OnToolError = Literal["feed", "raise"]
Step = Literal["model", "tools", "handoff", "done"]
RunStatus = Literal[
    "queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed",
    "completed", "incomplete", "expired",
]
"""The life of a run, as in OpenAI's Assistants API."""


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call the run waits for: a person's approval, or an external tool's output.

    Attributes:
        id: The tool call's id (use it in ``approve=``, ``reject=`` or ``outputs=``).
        name: The tool's name.
        arguments: The arguments the model sent, decoded.
        kind: ``"approval"`` or ``"external"``.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    kind: Literal["approval", "external"]

# Tool failures of unknown tool names share one retry budget under this key.
_UNKNOWN_TOOL_KEY = "\x00unknown"
_STATE_VERSION = 1
_UNSET: Any = object()
_INTERRUPTED = "Not run: the conversation was interrupted before this tool call returned."


@dataclass(slots=True)
class RunState:
    """Everything a run needs to continue, between two steps; plain, serialisable data.

    Attributes:
        messages: The conversation so far, instructions and history included.
        usage: What the run has spent.
        turn: How many model responses the run has handled.
        next_step: ``"model"`` (request the model), ``"tools"`` (run the tool calls of the
            last assistant message that have no result yet) or ``"done"``.
        new_message_index: Where this run's own messages start in ``messages``.
        tool_failures: Consecutive failures per tool, against their retry budgets.
        output_failures: Invalid final answers so far, against ``output_retries``.
        tool_choice: A tool choice the loop imposed over the settings (``""``: cleared).
        final: The raw final answer (text, or the final-result tool's JSON) once done.
        pending: The calls the run waits for (it stopped with ``requires_action``).
        approved: Calls a person approved, not yet run.
        rejected: Calls a person rejected, with the reason the model will read.
        outputs: Outputs submitted for external tool calls, not yet sent.
        agent: The name of the active agent after a handoff (None: the run's first).
        handoff_to: The agent a handoff of the last turn leads to, once its tools ran.
        handed: The conversation an input filter handed to the active agent (None: all).
        handoff_at: Where the active agent's own messages start in ``messages``.
    """

    messages: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    turn: int = 0
    next_step: Step = "model"
    new_message_index: int = 0
    tool_failures: dict[str, int] = field(default_factory=dict)
    output_failures: int = 0
    tool_choice: str | None = None
    final: str | None = None
    pending: list[PendingCall] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    agent: str | None = None
    handoff_to: str | None = None
    handed: list[Message] | None = None
    handoff_at: int = 0

    def decide(
        self,
        approve: Sequence[str] = (),
        reject: Mapping[str, str] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record decisions on pending calls: ``approve`` ids, ``reject`` id → reason,
        ``outputs`` id → output of an external tool (not a string: sent as JSON)."""
        if isinstance(approve, str):
            raise ConfigurationError(
                f"approve= takes a list of tool call ids, got the string {approve!r}; "
                f"write approve=[{approve!r}]"
            )
        approve, reject, outputs = list(approve), dict(reject or {}), dict(outputs or {})
        both = set(approve) & set(reject)
        if both:
            raise ConfigurationError(
                f"tool call(s) {', '.join(sorted(both))} are both approved and rejected; "
                "decide once per call"
            )
        kinds = {p.id: p.kind for p in self.pending}
        for call_id, wanted in (
            *((i, "approval") for i in approve),
            *((i, "approval") for i in reject),
            *((i, "external") for i in outputs),
        ):
            if kinds.get(call_id) != wanted:
                waiting = ", ".join(f"{p.id} ({p.kind} of {p.name})" for p in self.pending)
                raise NotPending(
                    f"tool call {call_id!r} is not waiting for "
                    f"{'approval' if wanted == 'approval' else 'an output'}; the run waits "
                    f"for: {waiting or 'nothing'}. Approve or reject approval calls, submit "
                    "outputs for external ones"
                )
        self.approved += approve
        self.rejected.update(reject)
        for call_id, value in outputs.items():
            self.outputs[call_id] = value if isinstance(value, str) else json.dumps(value)
        decided = {*approve, *reject, *outputs}
        self.pending = [p for p in self.pending if p.id not in decided]

    def copy(self) -> RunState:
        """An independent copy (the messages themselves are immutable and shared)."""
        return dataclasses.replace(
            self,
            messages=list(self.messages),
            usage=self.usage.copy(),
            tool_failures=dict(self.tool_failures),
            pending=list(self.pending),
            approved=list(self.approved),
            rejected=dict(self.rejected),
            outputs=dict(self.outputs),
            handed=None if self.handed is None else list(self.handed),
        )

    @property
    def pending_calls(self) -> list[ToolCall]:
        """The tool calls of the last assistant message that have no result yet."""
        answered: set[str | None] = set()
        for message in reversed(self.messages):
            if message.role == "assistant":
                return [c for c in message.tool_calls if c.id not in answered]
            if message.role == "tool":
                answered.add(message.tool_call_id)
        return []

    def to_json(self) -> str:
        """The state as JSON text; :meth:`from_json` reads it back."""
        return json.dumps(
            {
                "version": _STATE_VERSION,
                "messages": [to_saved(m) for m in self.messages],
                "usage": dataclasses.asdict(self.usage),
                "turn": self.turn,
                "next_step": self.next_step,
                "new_message_index": self.new_message_index,
                "tool_failures": self.tool_failures,
                "output_failures": self.output_failures,
                "tool_choice": self.tool_choice,
                "final": self.final,
                "pending": [dataclasses.asdict(p) for p in self.pending],
                "approved": self.approved,
                "rejected": self.rejected,
                "outputs": self.outputs,
                "agent": self.agent,
                "handoff_to": self.handoff_to,
                "handed": None if self.handed is None else [to_saved(m) for m in self.handed],
                "handoff_at": self.handoff_at,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RunState:
        """Load a state saved with :meth:`to_json`."""
        try:
            data = json.loads(text)
            if data.get("version") != _STATE_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            if data.get("next_step") not in ("model", "tools", "handoff", "done"):
                raise ValueError(f"unknown next_step {data.get('next_step')!r}")
            return cls(
                messages=[Message.from_openai(m) for m in data["messages"]],
                usage=Usage(**data["usage"]),
                turn=int(data["turn"]),
                next_step=data["next_step"],
                new_message_index=int(data["new_message_index"]),
                tool_failures={str(k): int(v) for k, v in data["tool_failures"].items()},
                output_failures=int(data["output_failures"]),
                tool_choice=data["tool_choice"],
                final=data["final"],
                pending=[PendingCall(**p) for p in data["pending"]],
                approved=list(data["approved"]),
                rejected=dict(data["rejected"]),
                outputs=dict(data["outputs"]),
                agent=data.get("agent"),
                handoff_to=data.get("handoff_to"),
                handed=None if data.get("handed") is None else [
                    Message.from_openai(m) for m in data["handed"]
                ],
                handoff_at=int(data.get("handoff_at", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"not a saved RunState ({type(exc).__name__}: {exc}); pass the text "
                "RunState.to_json() returned"
            ) from None


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of a run that finished or stopped to wait.

    Attributes:
        output: The final answer: ``str``, or an instance of the agent's ``output_type``;
            None unless ``status == "completed"``.
        messages: Every message of the conversation, instructions and history included.
        usage: Requests, tokens and tool calls, summed over the whole run.
        turns: How many model requests the run made.
        state: The run's :class:`RunState`: save it (``state.to_json()``) to resume later.
        status: ``"completed"``; ``"requires_action"`` when the run waits for ``pending``
            calls (resume with ``agent.resume``); ``"cancelled"``.
        pending: The calls the run waits for when ``status == "requires_action"``.
        run_id: The run's id in a store (None without one).
        last_agent: The agent that answered (the last one handed to; None for a run
            without an :class:`~agentkit.Agent`).
        model_name: The model that gave the last answer, as the server named it (for a
            ``FallbackModel``, the fallback that answered); None if no model answered.
    """

    output: OutputT
    messages: list[Message]
    usage: Usage
    turns: int
    new_message_index: int = 0
    state: RunState | None = None
    status: RunStatus = "completed"
    pending: list[PendingCall] = field(default_factory=list)
    run_id: str | None = None
    last_agent: Agent[Any] | None = None
    model_name: str | None = None

    @property
    def new_messages(self) -> list[Message]:
        """Only the messages this run added (the input and everything after it)."""
        return self.messages[self.new_message_index :]

    def to_openai(self) -> list[dict[str, Any]]:
        """The whole conversation as chat-completions wire dicts (JSON-serialisable)."""
        return to_openai(self.messages)

    def tool_calls(self, name: str | None = None) -> list[ToolCall]:
        """The tool calls the model made during this run, optionally only those of ``name``."""
        return [
            call
            for message in self.new_messages
            for call in message.tool_calls
            if name is None or call.name == name
        ]

    def tool_results(self, name: str | None = None) -> list[Message]:
        """The tool-result messages of this run, optionally only those of tool ``name``."""
        return [
            m for m in self.new_messages if m.role == "tool" and (name is None or m.name == name)
        ]


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The loop is about to run a tool call."""

    call: ToolCall

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.call.name

    @property
    def arguments(self) -> str:
        """The arguments as JSON text, as the model sent them."""
        return self.call.arguments


@dataclass(frozen=True, slots=True)
class ToolResultReceived:
    """A tool call finished (successfully or not); ``duration`` is in seconds."""

    call: ToolCall
    result: ToolResult
    duration: float


@dataclass(frozen=True, slots=True)
class ModelResponseFinished:
    """The model finished one response (one turn)."""

    response: ModelResponse
    turn: int


@dataclass(frozen=True, slots=True)
class HandoffOccurred:
    """The run handed the conversation from one agent to another (by their names)."""

    from_agent: str
    to_agent: str


@dataclass(frozen=True, slots=True)
class RunFinished(Generic[OutputT]):
    """The run is complete; ``result`` is what ``Agent.run`` returns."""

    result: RunResult[OutputT]


RunEvent = (
    TextDelta
    | ToolCallStarted
    | ToolResultReceived
    | ModelResponseFinished
    | HandoffOccurred
    | RunFinished[Any]
)
"""Everything ``Agent.stream`` yields, in the order it happens."""


# --- the spec of one run ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandoffRoute:
    """Where a handoff tool leads: the target agent's name, and an optional filter of the
    conversation it is handed (the messages, instructions left out)."""

    agent: str
    input_filter: Callable[[list[Message]], Sequence[Message]] | None = None


@dataclass(slots=True)
class RunSpec:
    """The parts of one run. Built by ``Agent``; usable directly without one."""

    model: Model
    tools: Sequence[Tool[Any, Any]] = ()
    instructions: Instructions = None
    output: OutputSpec | None = None
    settings: ModelSettings = field(default_factory=ModelSettings)
    max_turns: int = 10
    limits: UsageLimits | None = None
    output_retries: int = 2
    on_tool_error: OnToolError = "feed"
    deps: Any = None
    timeout: float | None = None
    history_policy: HistoryPolicy | None = None
    # Called after each step with the state (a store persists it, and may raise
    # RunCancelled to stop the run there).
    after_step: Callable[[RunState], Awaitable[None]] | None = None
    # The agent this spec is of (opaque here: result.last_agent, hooks), its own hooks,
    # its handoff tools (tool name -> route), and how to get another agent's spec by name.
    agent: Agent[Any] | None = None
    hooks: Sequence[RunHooks] = ()
    handoffs: Mapping[str, HandoffRoute] = field(default_factory=dict)
    find_agent: Callable[[str], RunSpec] | None = None
    thread_id: str | None = None
    guardrails: Sequence[Guardrail] = ()

    @property
    def uses_output_tool(self) -> bool:
        """Whether structured output goes through the final-result tool."""
        return self.output is not None and not self.model.supports_json_schema


class _Run:
    """One run in progress: the spec, the state, and what is derived from them once."""

    def __init__(self, spec: RunSpec, state: RunState, stream: bool) -> None:
        self.root = spec  # the agent the run started with; spec: the active one
        self.state = state
        self.stream = stream
        self.wrappers = active_wrappers()
        self.ctx = HookContext(spec.deps, state.usage, state.messages, thread_id=spec.thread_id)
        self.hook_list = [*active_hooks(), *spec.hooks]
        self.hooks = HookCaller(self.hook_list, self.ctx)
        self.ended = False
        self.instructions: str | None = None  # the active agent's, after a handoff
        self.bind(spec)
        self.deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        self.output: Any = _UNSET  # the validated final answer, once there is one
        self.parallel_input = False  # parallel input guardrails still to run
        self.model_name: str | None = None  # who gave the last answer

    def bind(self, spec: RunSpec) -> None:
        """Make ``spec`` the active one (at the start, and at a handoff)."""
        self.spec = spec
        # Test doubles (cassettes, the request blocker) stand in front of the model, once.
        self.model = wrap(spec.model, self.wrappers)
        self.tools = {t.name: t for t in spec.tools}
        self.definitions = [t.definition for t in spec.tools]
        self.response_format: dict[str, Any] | None = None
        if spec.uses_output_tool:
            assert spec.output is not None
            self.definitions.append(spec.output.tool_definition())
        elif spec.output is not None:
            self.response_format = spec.output.response_format()
        self.ctx.agent, self.ctx.agent_name = spec.agent, _name(spec)
        self.ctx.model = spec.model
        self.tool_guards = [g for g in spec.guardrails if g.tool_output is not None]
        # Test doubles are priced by the user's own prices only: no price table to load.
        self.price_table = not getattr(spec.model, "is_test_double", False)
        new = [h for h in spec.hooks if h not in self.hook_list]
        if new:
            self.hook_list += new
            self.hooks = HookCaller(self.hook_list, self.ctx)

    async def hook(self, name: str, *args: Any) -> None:
        """Call the hooks' ``name``, if any hook has it."""
        if self.hooks.wants(name):
            self.ctx.messages, self.ctx.usage = self.state.messages, self.state.usage
            self.ctx.turn = self.state.turn
            await self.hooks.call(name, *args)

    def settings(self) -> ModelSettings:
        settings = self.spec.settings
        choice = self.state.tool_choice
        if choice is not None:
            return dataclasses.replace(settings, tool_choice=choice or None)
        if self.spec.uses_output_tool and not self.spec.tools and settings.tool_choice in (
            None,
            "auto",
        ):
            return dataclasses.replace(settings, tool_choice="required")
        return settings

    def within_deadline(self) -> AbstractContextManager[Any]:
        if self.deadline is None:
            return nullcontext()
        return anyio.fail_after(max(self.deadline - time.monotonic(), 0))

    def result(self) -> RunResult[Any]:
        state = self.state
        output: Any = state.final
        if self.spec.output is not None and state.final is not None:
            # Validated when the answer came; a state loaded from JSON validates it here.
            output = self.output if self.output is not _UNSET else (
                self.spec.output.validate_json(state.final)
            )
        return RunResult(
            output=output,
            messages=state.messages,
            usage=state.usage,
            turns=state.turn,
            new_message_index=state.new_message_index,
            state=state,
            status="completed" if state.next_step == "done" else "requires_action",
            pending=list(state.pending),
            last_agent=self.spec.agent,
            model_name=self.model_name,
        )

    def fail_output(self, problem: str) -> None:
        self.state.output_failures += 1
        if self.state.output_failures > self.spec.output_retries:
            raise OutputValidationError(
                f"the model's answer did not validate after {self.state.output_failures} "
                f"attempts (output_retries={self.spec.output_retries}): {problem}"
            )

    def context(self, call: ToolCall | None = None) -> RunContext[Any]:
        return RunContext(
            deps=self.spec.deps,
            usage=self.state.usage,
            messages=self.state.messages,
            tool_name=call.name if call else None,
            tool_call_id=call.id if call else None,
            turn=self.state.turn,
        )


async def iterate_run(
    spec: RunSpec,
    input: str | Message | Sequence[Message] | None = None,
    history: Sequence[Message] = (),
    *,
    stream: bool = False,
    state: RunState | None = None,
) -> AsyncGenerator[RunEvent, None]:
    """Run the loop, yielding events; the last one is :class:`RunFinished`.

    Starts a new run from ``input`` and ``history`` (into ``state`` when given, so the
    caller can save it after any event), or, when ``input`` is None, continues ``state``:
    a run that stopped after a step (with ``history``: a state saved without its
    messages, whose ``new_message_index`` counts from the start of ``history``). With
    ``stream=True`` the model is called through ``Model.stream`` and text deltas are
    yielded as they arrive. Any exception escaping carries ``.messages``, ``.usage`` and
    ``.state`` of the run so far.
    """
    run = _Run(spec, state if state is not None else RunState(), stream)
    finished = False
    try:
        budget = spec.limits.max_cost_usd if spec.limits is not None else None
        if budget is not None:
            _check_priced(run)
        if state is None or input is not None:
            await _start(run, input, history)
            if spec.guardrails:
                await _check_input(run, parallel=False)
                run.parallel_input = any(g.input and g.parallel for g in spec.guardrails)
                if stream and run.parallel_input:
                    # Streamed text cannot be taken back: check before the request.
                    run.parallel_input = False
                    await _check_input(run, parallel=True)
        elif history:
            await _restore(run, history)
        if run.state.agent is not None:
            await _activate(run, run.state.agent)  # a resumed run goes on with its agent
        await run.hook("on_run_start")
        while run.state.next_step != "done":
            step = _STEPS[run.state.next_step](run)
            async with aclosing(step) as events:
                async for event in events:
                    yield event
            if spec.after_step is not None:
                await spec.after_step(run.state)
            if run.state.pending:
                break  # requires_action: the run waits for the caller
        result = run.result()
        if spec.guardrails and result.status == "completed":
            await _check_output(run, result)
        finished = True
        # Report success before handing over the result: the consumer may close this
        # generator right after the final event.
        await _end(run, result)
        yield RunFinished(result)
    except AgentkitError as exc:
        if exc.state is None:
            if isinstance(exc, ModelError):
                # Attempts the server answered before failing may be billed: count them.
                run.state.usage.requests += exc.requests_answered
            exc.attach_run(run.state)
        await _end(run, exc)
        raise
    except TimeoutError as exc:
        if run.deadline is None or time.monotonic() < run.deadline:
            error = await _foreign(run, exc)
            raise error from exc
        error = RunTimeout(
            f"the run did not finish within timeout={spec.timeout:g} seconds; the messages "
            "so far are attached. Raise timeout=, or resume the run from error.state"
        )
        error.attach_run(run.state)
        await _end(run, error)
        raise error from None
    except Exception as exc:
        error = await _foreign(run, exc)
        raise error from exc
    except BaseException as exc:  # cancelled, or abandoned by its consumer
        if not finished:
            with anyio.CancelScope(shield=True):
                await _end(run, exc)
        raise


async def _check_input(run: _Run, *, parallel: bool) -> None:
    """Run the input guardrails (the blocking or the parallel ones), concurrently."""
    checks = [g for g in run.spec.guardrails if g.input is not None and g.parallel == parallel]
    if not checks:
        return
    ctx = run.context()
    given = run.state.messages[run.state.new_message_index :]
    if len(checks) == 1:
        await checks[0].check_input(ctx, given)
        return
    await _first_error(_all(*(functools.partial(g.check_input, ctx, given) for g in checks)))


async def _check_output(run: _Run, result: RunResult[Any]) -> None:
    ctx = run.context()
    for guardrail in run.spec.guardrails:
        if guardrail.output is not None:
            result.output = await guardrail.check_output(ctx, result.output)


async def _all(*calls: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(call)


async def _first_error(work: Awaitable[None]) -> None:
    """Await ``work`` (a task group); raise the first error itself, not an exception group."""
    try:
        await work
    except Exception as exc:
        inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
        if inner and all(isinstance(e, Exception) for e in inner):
            raise inner[0] from None
        raise


async def _request_beside_guardrails(run: _Run, request: ModelRequest) -> ModelResponse:
    """The first request, sent while the parallel input guardrails run; a trip cancels it."""
    answer: list[ModelResponse] = []

    async def ask() -> None:
        answer.append(await run.model.request(request))

    try:
        await _first_error(_all(ask, functools.partial(_check_input, run, parallel=True)))
    except GuardrailTripped:
        if answer:  # it came back before the trip: it is spent all the same
            run.state.usage.add(_priced(run, answer[0]))
        raise
    return answer[0]


def _check_priced(run: _Run) -> None:
    from agentkit.pricing import price_of, unpriced_message

    if price_of(run.model.name, table=run.price_table) is None:
        raise ConfigurationError(unpriced_message(run.model.name))


_priced_by: Callable[..., Usage] | None = None


def _priced(run: _Run, response: ModelResponse) -> Usage:
    global _priced_by
    if _priced_by is None:
        # Loaded on the first response, not with this module (pricing adds nothing to
        # `import agentkit`), and kept: an import statement here would cost 5 µs a turn.
        from agentkit.pricing import priced as loaded

        _priced_by = loaded
    priced = _priced_by
    usage, table = response.usage, run.price_table
    if response.model_name is not None and response.model_name != run.model.name:
        usage = priced(usage, response.model_name, table=table)
    return priced(usage, run.model.name, table=table)


async def _foreign(run: _Run, exc: Exception) -> RunError:
    """Keep the promise that nothing is lost: wrap a foreign exception with the run."""
    error = RunError(f"the run failed: {type(exc).__name__}: {redact(str(exc))}")
    error.attach_run(run.state)
    await _end(run, error)
    return error


async def _end(run: _Run, outcome: RunResult[Any] | BaseException) -> None:
    """Tell the hooks, once, how the run ended. A hook failing on a run that already
    failed is logged: the run's own error is what the caller needs."""
    if run.ended:
        return
    run.ended = True
    if isinstance(outcome, RunResult):
        await run.hook("on_run_end", outcome)
        return
    try:
        await run.hook("on_run_end", outcome)
    except AgentkitError as exc:
        logger.warning("%s (while the run failed with %s)", exc, type(outcome).__name__)


async def _start(
    run: _Run, input: str | Message | Sequence[Message] | None, history: Sequence[Message]
) -> None:
    state = run.state
    # Set first, so that an instructions function that raises still leaves the history.
    state.messages = messages = list(history)
    instructions = await _render_instructions(run, run.root)
    if instructions is not None:
        if messages and messages[0].role in ("system", "developer"):
            messages[0] = Message.system(instructions)
        else:
            messages.insert(0, Message.system(instructions))
    state.messages = messages = repair_history(messages)
    state.new_message_index = len(messages)
    if isinstance(input, (str, Message)):
        messages.append(Message.user(input) if isinstance(input, str) else input)
    elif input is not None:
        messages.extend(input)


async def _restore(run: _Run, history: Sequence[Message]) -> None:
    """Give a state saved without its messages (a stored thread holds them) the
    conversation back: the instructions, then ``history``."""
    state = run.state
    state.messages = messages = list(history)
    instructions = await _render_instructions(run, run.root)
    if instructions is None:
        return
    # As in _start: the instructions replace a leading system message, or lead.
    if messages and messages[0].role in ("system", "developer"):
        messages[0] = Message.system(instructions)
    else:
        messages.insert(0, Message.system(instructions))
        state.new_message_index += 1
        state.handoff_at += 1


def repair_history(messages: list[Message]) -> list[Message]:
    """``messages`` with a result added for every tool call that has none (servers reject
    such a history); a tool result that answers no earlier call is an error."""
    repaired: list[Message] = []
    open_calls: dict[str, ToolCall] = {}

    def close_open() -> None:
        for call in open_calls.values():
            logger.info("history: tool call %s (%s) had no result", call.id, call.name)
            repaired.append(Message.tool(call.id, _INTERRUPTED, name=call.name, is_error=True))
        open_calls.clear()

    for message in messages:
        if message.role == "tool":
            if open_calls.pop(message.tool_call_id or "", None) is None:
                raise ConfigurationError(
                    f"the history has a tool result for call id {message.tool_call_id!r} "
                    "that no earlier assistant message made (or that was answered twice); "
                    "remove that tool message or keep the assistant message that made the "
                    "call"
                )
        else:
            close_open()
            open_calls = {c.id: c for c in message.tool_calls}
        repaired.append(message)
    close_open()
    return repaired if len(repaired) != len(messages) else messages


async def _render_instructions(run: _Run, spec: RunSpec) -> str | None:
    instructions = spec.instructions
    if instructions is None or isinstance(instructions, str):
        return instructions
    text = instructions(run.context())
    if inspect.isawaitable(text):
        text = await text
    if not isinstance(text, str):
        raise RunError(
            f"the instructions function {getattr(instructions, '__name__', instructions)!r} "
            f"returned {type(text).__name__}, expected str"
        )
    return text


# --- step: request the model and handle its response ------------------------------------


async def _model_step(run: _Run) -> AsyncGenerator[RunEvent, None]:
    spec, state = run.spec, run.state
    if state.turn >= spec.max_turns:
        raise MaxTurnsExceeded(
            f"the model did not finish within max_turns={spec.max_turns} turns; "
            "raise max_turns, or check the last messages for a tool-call loop"
        )
    if spec.limits is not None:
        reason = spec.limits.check_before_request(state.usage)
        if reason is not None:
            raise UsageLimitExceeded(f"usage limit reached: {reason}")
    # A snapshot: the request must not change when the run appends to the history.
    history = state.messages if state.agent is None else _conversation(run)
    sent = list(history) if spec.history_policy is None else spec.history_policy(history)
    if inspect.isawaitable(sent):
        with run.within_deadline():  # a summarizing policy calls a model
            sent = await sent
    request = ModelRequest(
        messages=sent,
        tools=run.definitions,
        settings=run.settings(),
        response_format=run.response_format,
    )
    if spec.limits is not None and spec.limits.max_cost_usd is not None:
        _check_budget(run, request, spec.limits.max_cost_usd)
    logger.debug(
        "requesting %s: turn %d, %d messages, %d tools",
        run.model.name, state.turn + 1, len(request.messages), len(request.tools),
    )
    await run.hook("on_model_start", request)
    started = time.perf_counter()
    response: ModelResponse | None = None
    if run.stream:
        async with closing_stream(run.model.stream(request)) as items:
            while True:
                with run.within_deadline():
                    item = await anext(items, None)
                if item is None:
                    break
                if isinstance(item, TextDelta):
                    yield item
                else:
                    response = item
        if response is None:
            raise RunError(f"model {run.model.name!r} ended its stream without a final response")
    else:
        with run.within_deadline():
            if run.parallel_input:
                run.parallel_input = False
                response = await _request_beside_guardrails(run, request)
            else:
                response = await run.model.request(request)
    state.turn += 1
    state.usage.add(_priced(run, response))
    run.model_name = response.model_name or run.model.name
    message = _unique_ids(response.message, state.messages, state.turn)
    if message is not response.message:
        response = dataclasses.replace(response, message=message)
    logger.info(
        "model %s answered turn %d in %.2fs (finish %s, %d tool calls, %d tokens)",
        run.model.name, state.turn, time.perf_counter() - started, response.finish_reason,
        len(message.tool_calls), response.usage.total_tokens,
    )
    await run.hook("on_model_end", response)
    # The state is complete before the event goes out: a consumer that stops here leaves
    # a run that resumes exactly where it stopped.
    error: AgentkitError | None = None
    try:
        _handle_response(run, request, response)
    except AgentkitError as exc:
        error = exc
    yield ModelResponseFinished(response, state.turn)
    if error is not None:
        raise error


def _check_budget(run: _Run, request: ModelRequest, max_cost_usd: float) -> None:
    from agentkit.pricing import budget_problem

    spent = run.state.usage.cost_usd
    if spent is None and run.state.usage.requests:
        raise UsageLimitExceeded(
            f"usage limit reached: max_cost_usd={max_cost_usd:g} is set but what the run "
            "spent so far is unknown (a request had no price); start a new run, or drop "
            "max_cost_usd"
        )
    problem = budget_problem(max_cost_usd, spent, run.model.name, request, table=run.price_table)
    if problem is not None:
        raise UsageLimitExceeded(f"usage limit reached: {problem}")


def _handle_response(run: _Run, request: ModelRequest, response: ModelResponse) -> None:
    state, spec, message = run.state, run.spec, response.message
    finish = response.finish_reason
    if finish == "length":
        # The half-written tool calls are dropped: they were never run.
        state.messages.append(Message.assistant(message.text or None))
        raise OutputTruncated(
            f"the model ran out of tokens (finish reason 'length') on turn {state.turn}"
            + (" in the middle of a tool call, which was not run" if message.tool_calls else "")
            + "; raise ModelSettings(max_tokens=...) or ask for a shorter answer"
        )
    state.messages.append(message)
    if finish == "content_filter":
        raise ContentFiltered(
            f"the server's content filter stopped the model on turn {state.turn}; "
            "rephrase the request or check the server's moderation settings"
        )
    if message.tool_calls:
        if spec.limits is not None:
            reason = spec.limits.check_tool_calls(state.usage, len(message.tool_calls))
            if reason is not None:
                # Answer every call, so the history in the error can be continued.
                for call in message.tool_calls:
                    state.messages.append(
                        Message.tool(
                            call.id,
                            "Not run: the run's tool-call limit was reached.",
                            name=call.name,
                            is_error=True,
                        )
                    )
                raise UsageLimitExceeded(f"usage limit reached: {reason}")
        state.next_step = "tools"
        return
    # No tool calls: the model stopped.
    choice = request.settings.tool_choice
    if spec.uses_output_tool:
        problem = f"you must call the {FINAL_RESULT_TOOL!r} tool to give the final answer"
        run.fail_output(problem)
        state.messages.append(Message.user(f"Error: {problem}. Try again."))
        state.tool_choice = FINAL_RESULT_TOOL
        return
    if choice not in (None, "auto", "none"):
        # The server ignored a forced tool choice: treat it like an invalid answer.
        what = "a tool" if choice == "required" else f"the tool {choice!r}"
        state.output_failures += 1
        if state.output_failures > spec.output_retries:
            raise ToolChoiceIgnored(
                f"the model answered with text although tool_choice={choice!r} requires "
                f"{what} ({state.output_failures} times, output_retries="
                f"{spec.output_retries}); the server may not support tool_choice: check "
                "its documentation, or drop tool_choice"
            )
        state.messages.append(
            Message.user(f"Error: you must call {what} now (tool_choice={choice!r}). Try again.")
        )
        return
    if spec.output is not None:
        try:
            run.output = spec.output.validate_json(message.text)
        except ValueError as exc:
            run.fail_output(str(exc))
            state.messages.append(
                Message.user(
                    f"Your answer did not match the required JSON schema: {exc}. "
                    "Answer again with JSON only, matching the schema exactly."
                )
            )
            return
    state.final = message.text
    state.next_step = "done"


def _unique_ids(message: Message, history: Sequence[Message], turn: int) -> Message:
    """``message`` with every tool call id non-empty and unique in the conversation.

    Replacement ids are derived from the turn and position, not random, so a recorded
    conversation replays with the same ids (cassettes compare requests exactly).
    """
    if not message.tool_calls:
        return message
    seen = {c.id for m in history for c in m.tool_calls}
    calls = []
    for index, call in enumerate(message.tool_calls):
        if not call.id or call.id in seen:
            call_id, suffix = f"call_t{turn}_{index}", 0
            while call_id in seen:
                suffix += 1
                call_id = f"call_t{turn}_{index}_{suffix}"
            call = ToolCall(call_id, call.name, call.arguments)
        seen.add(call.id)
        calls.append(call)
    if calls == list(message.tool_calls):
        return message
    return dataclasses.replace(message, tool_calls=tuple(calls))


# --- step: run the tools ------------------------------------------------------------------

Outcome = tuple[ToolCall, ToolResult, float]


async def _tools_step(run: _Run) -> AsyncGenerator[RunEvent, None]:
    state = run.state
    calls = state.pending_calls
    ready, waiting, decided = await _sort_calls(run, calls)
    for call in ready:
        yield ToolCallStarted(call)
    with run.within_deadline():
        outcomes = await _run_tools(run, ready) if ready else []
    # Results in call order, whoever produced them.
    order = {call.id: i for i, call in enumerate(calls)}
    outcomes = sorted([*outcomes, *decided], key=lambda outcome: order[outcome[0].id])
    tripped: GuardrailTripped | None = None
    if run.tool_guards:
        outcomes, tripped = await _guard_tool_outputs(run, outcomes)
    if run.spec.handoffs:
        outcomes = _choose_handoff(run, outcomes)
    final: str | None = None
    for call, result, duration in outcomes:
        state.messages.append(
            Message.tool(call.id, result.content, name=call.name, is_error=result.is_error)
        )
        logger.info(
            "tool %s %s in %.2fs (call %s)",
            call.name, "failed" if result.is_error else "returned", duration, call.id,
        )
        if call.name == FINAL_RESULT_TOOL and run.spec.uses_output_tool and not result.is_error:
            final, run.output = call.arguments, result.value
    state.usage.tool_calls += len(ready)
    handled = {call.id for call, _, _ in outcomes}
    state.approved = [i for i in state.approved if i not in handled]
    state.rejected = {k: v for k, v in state.rejected.items() if k not in handled}
    state.outputs = {k: v for k, v in state.outputs.items() if k not in handled}
    state.pending = waiting
    state.next_step = "tools" if waiting else "handoff" if state.handoff_to else "model"
    error: AgentkitError | None = tripped
    try:
        if error is None:
            _check_tool_failures(run, outcomes)
    except AgentkitError as exc:
        error = exc
    if final is not None and error is None and not waiting:
        state.final = final
        state.next_step = "done"
    choice = state.tool_choice or run.spec.settings.tool_choice
    if run.spec.settings.reset_tool_choice and choice not in (None, "", "auto", "none"):
        state.tool_choice = ""
    # Events after the state is complete (see _model_step).
    for call, result, duration in outcomes:
        yield ToolResultReceived(call, result, duration)
    if error is not None:
        raise error


async def _guard_tool_outputs(
    run: _Run, outcomes: list[Outcome]
) -> tuple[list[Outcome], GuardrailTripped | None]:
    """Each result through the tool-output guardrails, in call order; after a trip the
    remaining results are withheld from the model too, and the trip is returned."""
    checked: list[Outcome] = []
    tripped: GuardrailTripped | None = None
    for call, result, duration in outcomes:
        if call.name == FINAL_RESULT_TOOL and call.name not in run.tools:
            checked.append((call, result, duration))
            continue
        if tripped is None:
            try:
                for guardrail in run.tool_guards:
                    result = await guardrail.check_tool_output(run.context(call), call, result)
            except GuardrailTripped as exc:
                tripped = exc
        if tripped is not None:
            text = f"Withheld: guardrail {tripped.guardrail!r} stopped the run."
            result = ToolResult(content=text, is_error=True)
        checked.append((call, result, duration))
    return checked, tripped


async def _sort_calls(
    run: _Run, calls: list[ToolCall]
) -> tuple[list[ToolCall], list[PendingCall], list[Outcome]]:
    """Split the calls to answer into those to run now, those that wait for the caller
    (approval, external output) and those the caller already answered."""
    state = run.state
    ready: list[ToolCall] = []
    waiting: list[PendingCall] = []
    decided: list[Outcome] = []
    for call in calls:
        tool = run.tools.get(call.name)
        if call.id in state.rejected:
            reason = state.rejected[call.id]
            text = f"Not run: the user rejected this call. Reason: {reason}"
            decided.append((call, ToolResult(content=text), 0.0))
        elif tool is not None and tool.external:
            if call.id in state.outputs:
                decided.append((call, ToolResult(content=state.outputs[call.id]), 0.0))
            else:
                waiting.append(_pending(call, "external"))
        elif (
            tool is not None
            and tool.needs_approval is not False
            and call.id not in state.approved
            and await _requires_approval(run, tool, call)
        ):
            waiting.append(_pending(call, "approval"))
        else:
            ready.append(call)
    return ready, waiting, decided


async def _requires_approval(run: _Run, tool: Tool[Any, Any], call: ToolCall) -> bool:
    try:
        return await tool.requires_approval(run.context(call), call.arguments)
    except Exception as exc:
        # A rule that cannot decide (e.g. arguments it did not expect) asks a person.
        logger.warning("tool %s: its needs_approval rule raised %s: %s; asking for "
                       "approval", tool.name, type(exc).__name__, redact(str(exc)))
        return True


def _pending(call: ToolCall, kind: Literal["approval", "external"]) -> PendingCall:
    try:
        arguments = call.parsed_arguments()
    except ValueError:
        arguments = None
    return PendingCall(call.id, call.name, arguments if isinstance(arguments, dict) else {}, kind)


async def _run_tools(run: _Run, calls: Sequence[ToolCall]) -> list[Outcome]:
    if len(calls) == 1:
        return [await _run_one(run, calls[0])]
    outcomes: list[Outcome | None] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(run.spec.settings.max_parallel_tools)

    async def run_at(index: int, call: ToolCall) -> None:
        async with limiter:
            outcomes[index] = await _run_one(run, call)

    try:
        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run_at, index, call)
    except Exception as exc:
        # The task group wraps failures in an exception group; surface the (first) error
        # itself, so callers see the same exception as with a single tool call.
        inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
        if inner and all(isinstance(e, Exception) for e in inner):
            raise inner[0] from None
        raise
    return [o for o in outcomes if o is not None]


async def _run_one(run: _Run, call: ToolCall) -> Outcome:
    started = time.perf_counter()
    output = run.spec.output
    tool = run.tools.get(call.name)
    if tool is None and call.name == FINAL_RESULT_TOOL and output and run.spec.uses_output_tool:
        result = _final_result(output, call)
    elif tool is None:
        known = ", ".join(sorted(run.tools)) or "(none)"
        error = UnknownToolError(
            f"Unknown tool {call.name!r}. Available tools: {known}.", tool_name=call.name
        )
        result = ToolResult(content=str(error), is_error=True, error=error)
    else:
        await run.hook("on_tool_start", call)
        ctx = run.context(call) if tool.takes_context else None
        result = await tool.invoke(call.arguments, ctx)
        await run.hook("on_tool_end", call, result)
    return call, result, time.perf_counter() - started


def _final_result(output: OutputSpec, call: ToolCall) -> ToolResult:
    try:
        value = output.validate_json(call.arguments or "{}")
    except ValueError as exc:
        error = ToolArgumentsError(
            f"The final answer is invalid: {exc}. Call {FINAL_RESULT_TOOL} again with "
            "arguments matching its schema.",
            tool_name=FINAL_RESULT_TOOL,
        )
        return ToolResult(content=str(error), is_error=True, error=error)
    return ToolResult(content="Final answer received.", value=value)


def _check_tool_failures(run: _Run, outcomes: list[Outcome]) -> None:
    spec, state = run.spec, run.state
    for call, result, _ in outcomes:
        tool = run.tools.get(call.name)
        if tool is None and call.name == FINAL_RESULT_TOOL:
            if result.is_error:
                run.fail_output(result.content)
            continue
        key = call.name if tool is not None else _UNKNOWN_TOOL_KEY
        if not result.is_error:
            state.tool_failures.pop(key, None)
            continue
        error = result.error
        if (
            spec.on_tool_error == "raise"
            and error is not None
            and not isinstance(error, (ToolArgumentsError, UnknownToolError))
        ):
            raise error
        failures = state.tool_failures.get(key, 0) + 1
        state.tool_failures[key] = failures
        budget = tool.max_retries if tool is not None else 2
        if failures > budget:
            what = f"tool {call.name!r}" if tool is not None else "calls to unknown tools"
            exc = ToolRetriesExceeded(
                f"{what} failed {failures} times in a row (retry budget {budget}); "
                f"last error: {result.content}"
            )
            if isinstance(error, ToolCallError):
                raise exc from error
            raise exc


# --- step: hand the conversation to another agent ----------------------------------------


def _choose_handoff(run: _Run, outcomes: list[Outcome]) -> list[Outcome]:
    """Note the turn's handoff (its first successful one), made once every call of the
    turn has its result; a further handoff call is answered as not followed."""
    chosen: list[Outcome] = []
    for call, result, duration in outcomes:
        route = run.spec.handoffs.get(call.name)
        if route is not None and not result.is_error:
            if run.state.handoff_to is None:
                run.state.handoff_to = route.agent
            elif route.agent != run.state.handoff_to:
                text = (f"Not transferred: this turn already hands the conversation to "
                        f"{run.state.handoff_to}.")
                result = ToolResult(content=text, is_error=True)
        chosen.append((call, result, duration))
    return chosen


async def _handoff_step(run: _Run) -> AsyncGenerator[RunEvent, None]:
    state = run.state
    target = state.handoff_to
    assert target is not None
    source = run.spec
    route = next((r for r in source.handoffs.values() if r.agent == target), None)
    # What the new agent is handed: the conversation as the current agent saw it.
    if (route is not None and route.input_filter is not None) or state.handed is not None:
        seen = _conversation(run, instructions=False)
        state.handed = list(route.input_filter(seen)) if route and route.input_filter else seen
    state.handoff_at = len(state.messages)
    state.agent, state.handoff_to, state.next_step = target, None, "model"
    state.tool_choice = None  # the new agent's own settings decide
    await _activate(run, target)
    logger.info("handoff from %s to %s on turn %d", _name(source), target, state.turn)
    await run.hook("on_handoff", source.agent, run.spec.agent)
    yield HandoffOccurred(_name(source), target)


_STEPS: dict[str, Callable[[_Run], AsyncGenerator[RunEvent, None]]] = {
    "model": _model_step,
    "tools": _tools_step,
    "handoff": _handoff_step,
}


async def _activate(run: _Run, name: str) -> None:
    """Make the agent ``name`` the active one; the run-wide parts (turns, limits, deps,
    timeout, storage) stay those of the run's first agent."""
    root = run.root
    if name == _name(root):
        if run.spec is not root:
            run.bind(root)
    else:
        if root.find_agent is None:
            raise ConfigurationError(
                f"the run is with agent {name!r}, but agent {_name(root)!r} has no handoffs "
                "to find it by; resume the run with the agent that started it"
            )
        found = root.find_agent(name)
        run.bind(dataclasses.replace(
            found, max_turns=root.max_turns, limits=root.limits, deps=root.deps,
            timeout=root.timeout, history_policy=root.history_policy,
            after_step=root.after_step, find_agent=root.find_agent, thread_id=root.thread_id,
        ))  # fmt: skip
    run.instructions = await _render_instructions(run, run.spec)


def _conversation(run: _Run, instructions: bool = True) -> list[Message]:
    """The conversation as the active agent sees it after a handoff: its own
    instructions, then what it was handed, then its own part of the run."""
    state, messages = run.state, run.state.messages
    leading = bool(messages) and messages[0].role in ("system", "developer") and (
        run.root.instructions is not None or run.instructions is not None
    )
    if state.handed is not None:
        body = [*state.handed, *messages[state.handoff_at :]]
    else:
        body = messages[1:] if leading else list(messages)
    if instructions and run.instructions is not None:
        body.insert(0, Message.system(run.instructions))
    return body


def _name(spec: RunSpec) -> str:
    return spec.agent.name if spec.agent is not None else "agent"
