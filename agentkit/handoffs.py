"""Several agents in one run: handoffs, and agents used as tools.

``Agent(handoffs=[billing, support])`` gives the model one ``transfer_to_<name>`` tool per
target. When the model calls one, the run's other tool calls of that turn run first; then
the target becomes the active agent (its instructions, tools, model, settings and output
type) and the run goes on with the same conversation, optionally passed through an
``input_filter``. Turns, usage limits and the timeout count across agents.

``agent.as_tool(...)`` is the other way to combine agents: the outer agent calls the inner
one like any tool, with one string argument ``input``, and reads its answer; the inner
run's usage is added to the outer run's, its messages stay out of the outer conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit.errors import AgentkitError, ConfigurationError, RunError
from agentkit.messages import Message
from agentkit.run import HandoffRoute, RunResult
from agentkit.tools import RunContext, Tool, ToolResult, tool

if TYPE_CHECKING:
    from agentkit.agent import Agent

__all__ = ["AgentTool", "Handoff", "InputFilter", "agent_tool", "drop_tool_calls", "handoff"]

InputFilter = Callable[[list[Message]], Sequence[Message]]
"""What the next agent is handed: a function of the conversation so far (without the
instructions) returning the messages to hand over."""


@dataclass(frozen=True, eq=False)
class Handoff:
    """A handoff to ``agent``, as :func:`handoff` configures it; a bare agent in
    ``Agent(handoffs=[...])`` means ``Handoff(agent)``.

    Attributes:
        agent: The agent that takes over.
        tool_name: The tool the model calls (default ``transfer_to_<agent name>``).
        description: The tool's description (default: built from the agent's
            ``description``).
        input_filter: What of the conversation the agent is handed (default: all of it).
    """

    agent: Agent[Any]
    tool_name: str | None = None
    description: str | None = None
    input_filter: InputFilter | None = None

    @property
    def name(self) -> str:
        """The name of the tool the model calls."""
        return self.tool_name or f"transfer_to_{_slug(self.agent.name)}"


def handoff(
    agent: Agent[Any],
    *,
    tool_name: str | None = None,
    description: str | None = None,
    input_filter: InputFilter | None = None,
) -> Handoff:
    """A handoff to ``agent`` with its own tool name, description or input filter.

    >>> triage = Agent(name="triage", handoffs=[handoff(billing, input_filter=drop_tool_calls)])
    """
    return Handoff(agent, tool_name, description, input_filter)


def drop_tool_calls(messages: list[Message]) -> list[Message]:
    """An input filter: the conversation without tool calls and tool results (an
    assistant message that only called tools goes too)."""
    kept = []
    for message in messages:
        if message.role == "tool":
            continue
        if message.tool_calls:
            if not message.text:
                continue
            message = Message.assistant(message.text)
        kept.append(message)
    return kept


def handoff_parts(
    owner: str, targets: Sequence[Agent[Any] | Handoff], taken: Sequence[str]
) -> tuple[list[Tool[Any, Any]], dict[str, HandoffRoute]]:
    """The tools and routes of an agent's ``handoffs``; ``taken`` are its own tool names."""
    tools: list[Tool[Any, Any]] = []
    routes: dict[str, HandoffRoute] = {}
    for target in targets:
        spec = target if isinstance(target, Handoff) else Handoff(target)
        if not hasattr(spec.agent, "_spec"):
            raise ConfigurationError(
                f"agent {owner!r}: handoffs= takes agents (or handoff(agent, ...)), got "
                f"{type(spec.agent).__name__}"
            )
        name = spec.name
        if name in routes or name in taken:
            raise ConfigurationError(
                f"agent {owner!r} has two tools named {name!r} (a handoff and another "
                "tool, or two handoffs): give one a distinct name with "
                "handoff(agent, tool_name=...)"
            )
        tools.append(_handoff_tool(spec, name))
        routes[name] = HandoffRoute(spec.agent.name, spec.input_filter)
    return tools, routes


def _handoff_tool(spec: Handoff, name: str) -> Tool[Any, Any]:
    target = spec.agent.name
    about = getattr(spec.agent, "description", None)
    description = spec.description or (
        f"Hand the conversation over to the {target} agent." + (f" {about}" if about else "")
    )

    def transfer(reason: str | None = None) -> str:
        """Hand the conversation over.

        Args:
            reason: Why, in one short sentence.
        """
        return f"Transferred to {target}."

    return tool(name=name, description=description)(transfer)


def reachable(start: Agent[Any]) -> dict[str, Agent[Any]]:
    """Every agent a run started with ``start`` can hand off to, by name (``start``
    included); names must be unique among them."""
    found: dict[str, Agent[Any]] = {}
    todo = [start]
    while todo:
        agent = todo.pop()
        known = found.get(agent.name)
        if known is agent:
            continue
        if known is not None:
            raise ConfigurationError(
                f"two different agents named {agent.name!r} can take part in a run of "
                f"{start.name!r}: a run names its active agent, so give them distinct names"
            )
        found[agent.name] = agent
        todo += [t.agent if isinstance(t, Handoff) else t for t in agent.handoffs]
    return found


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:48] or "agent"


# --- agents as tools ----------------------------------------------------------------------


class _Answer:
    """An inner run and the text the outer model reads of it."""

    __slots__ = ("result", "text")

    def __init__(self, text: str, result: RunResult[Any]) -> None:
        self.text, self.result = text, result

    def __str__(self) -> str:
        return self.text


class AgentTool(Tool[..., Any]):
    """An agent called as a tool (see :func:`agent_tool`): the tool result's ``value`` is
    the inner run's :class:`~agentkit.RunResult`, its ``content`` the extracted answer."""

    async def invoke(
        self, arguments: str | Mapping[str, Any] | None, context: RunContext[Any] | None = None
    ) -> ToolResult:
        """Run the agent on the ``input`` argument; see :meth:`Tool.invoke`."""
        result = await super().invoke(arguments, context)
        if isinstance(result.value, _Answer):
            return ToolResult(content=result.value.text, value=result.value.result)
        return result


_INPUT = {
    "type": "object",
    "properties": {
        "input": {
            "type": "string",
            "description": "The request, complete: the agent sees nothing else of this "
            "conversation.",
        }
    },
    "required": ["input"],
    "additionalProperties": False,
}


def agent_tool(
    agent: Agent[Any],
    name: str | None = None,
    description: str | None = None,
    output_extractor: Callable[[RunResult[Any]], str] | None = None,
) -> AgentTool:
    """``agent`` as a tool taking one string, ``input``; use ``agent.as_tool(...)``.

    The inner run gets the outer run's ``context`` (deps); its usage is added to the
    outer run's. The model reads ``output_extractor(result)`` (default: the output, as
    text or JSON).
    """
    name = name or _slug(agent.name)
    description = description or getattr(agent, "description", None) or (
        f"Ask the {agent.name} agent."
    )

    async def ask(ctx: RunContext[Any], input: str) -> _Answer:
        try:
            inner = await agent.run(input, context=ctx.deps)
        except AgentkitError as exc:
            if exc.usage is not None:
                ctx.usage.add(exc.usage)
            raise
        ctx.usage.add(inner.usage)
        if inner.status != "completed":
            raise RunError(
                f"agent {agent.name!r} stopped with status {inner.status!r}: an agent used "
                "as a tool cannot wait for approvals or external tools; give it tools "
                "that run on their own, or hand off to it instead"
            )
        if output_extractor is not None:
            return _Answer(str(output_extractor(inner)), inner)
        output = inner.output
        text = output if isinstance(output, str) else _json(output)
        return _Answer(text, inner)

    return AgentTool(name, description, dict(_INPUT), ask, strict=True)


def _json(value: Any) -> str:
    import pydantic_core

    return pydantic_core.to_json(value, serialize_unknown=True).decode()
