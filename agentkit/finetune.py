"""Fine-tuning data: export runs and threads to OpenAI's chat fine-tuning JSONL, validate it.

One line per conversation::

    {"messages": [{"role": "system", ...}, {"role": "user", ...},
                  {"role": "assistant", "tool_calls": [...], "weight": 0},
                  {"role": "tool", "tool_call_id": ..., "content": ...},
                  {"role": "assistant", "content": "...", "weight": 1}],
     "tools": [...], "parallel_tool_calls": true}

``export_jsonl`` writes it from run results, eval reports (their recorded runs) or stored
threads' messages; ``validate_jsonl`` runs the checks of OpenAI's data-preparation guide
and ``training_stats`` counts tokens and estimates the training epochs and tokens billed.
Token counts are exact (``o200k_base``) when the ``finetune`` extra's tokenizer is
installed, else an estimate that says so.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from agentkit.errors import ConfigurationError
from agentkit.messages import Message

__all__ = [
    "TrainingStats",
    "ValidationIssue",
    "export_jsonl",
    "training_stats",
    "validate_jsonl",
]

TrainOn = Literal["final", "all"]

_TOP_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight"})
_ROLES = frozenset({"system", "user", "assistant", "tool"})
#: OpenAI's minimum number of examples per training file.
MIN_EXAMPLES = 10
#: The default token limit of one example (gpt-4o-mini's training context).
DEFAULT_MAX_TOKENS = 65_536
# How OpenAI picks the default epochs (from its data-preparation guide).
_TARGET_EPOCHS, _MIN_TARGET, _MAX_TARGET, _MAX_EPOCHS = 3, 100, 25_000, 25

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# --- export -----------------------------------------------------------------------------


def export_jsonl(
    items: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    train_on: TrainOn = "final",
    only: Callable[[Any], bool] | None = None,
    tools: Sequence[Any] | None = None,
    parallel_tool_calls: bool | None = True,
) -> int:
    """Write conversations as OpenAI chat fine-tuning JSONL; return the lines written.

    Args:
        items: Each a :class:`~agentkit.RunResult`, an eval run
            (:class:`~agentkit.evals.CaseResult`), an :class:`~agentkit.evals.EvalReport`
            (all its runs, with its agent's tools), a list of messages (e.g.
            ``await store.messages(thread_id)``), or a dict with ``"messages"`` (e.g. an
            ``agentkit threads export`` document).
        path: The ``.jsonl`` file to write.
        train_on: ``"final"``: only the last assistant message is trained (weight 1, the
            earlier ones 0); ``"all"``: every assistant message is.
        only: Keep only the items (runs) for which ``only(item)`` is true, e.g.
            ``lambda run: run.passed``.
        tools: The tools offered in these conversations (``Tool`` objects or
            chat-completions definitions); default: an eval report's, else none.
        parallel_tool_calls: Written alongside ``tools`` (``None`` leaves it out).

    Conversations are cut after their last answer (an assistant message calling no tools);
    those with none are skipped.
    """
    if train_on not in ("final", "all"):
        raise ConfigurationError(f"train_on must be 'final' or 'all', got {train_on!r}")
    given_tools = None if tools is None else [_tool_definition(t) for t in tools]
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for item, item_tools in _conversations(items, only):
            line = _example(item, given_tools if given_tools is not None else item_tools,
                            train_on, parallel_tool_calls)
            if line is not None:
                out.write(line)
                written += 1
    return written


def _conversations(items: Iterable[Any], only: Callable[[Any], bool] | None
                   ) -> Iterable[tuple[Any, list[dict[str, Any]]]]:
    from agentkit.evals.report import EvalReport

    for item in items:
        if isinstance(item, EvalReport):
            for run in item.results:
                if only is None or only(run):
                    yield run.messages, item.tools
        elif only is None or only(item):
            yield _messages_of(item), []


def _messages_of(item: Any) -> Sequence[Any]:
    if isinstance(item, Mapping):
        if "messages" not in item:
            raise ConfigurationError(f"a dict to export needs 'messages'; got keys "
                                     f"{sorted(item)!r:.120}")
        messages: Sequence[Any] = item["messages"]
        return messages
    found = getattr(item, "messages", None)
    if found is not None:
        return found  # type: ignore[no-any-return]
    if isinstance(item, Sequence) and not isinstance(item, str):
        return item
    raise ConfigurationError(
        f"cannot export a {type(item).__name__}: give RunResults, eval runs or reports, "
        "message lists (a thread's messages) or dicts with 'messages'"
    )


def _wire(message: Any) -> dict[str, Any]:
    if isinstance(message, Message):
        return message.to_openai()
    if isinstance(message, Mapping):
        return dict(message)
    raise ConfigurationError(f"a message must be a Message or a dict; got "
                             f"{type(message).__name__}")


def _example(messages: Sequence[Any], tools: list[dict[str, Any]], train_on: TrainOn,
             parallel: bool | None) -> str | None:
    wire = [_wire(m) for m in messages]
    # The last answer: an assistant message that calls no tools (a run stopped while
    # waiting for tool results has calls without results, which OpenAI rejects).
    last = max((i for i, m in enumerate(wire)
                if m.get("role") == "assistant" and not m.get("tool_calls")), default=-1)
    if last < 0:
        return None
    out = []
    for i, m in enumerate(wire[: last + 1]):
        role = "system" if m.get("role") == "developer" else m.get("role")
        clean: dict[str, Any] = {"role": role, "content": m.get("content")}
        if role == "assistant":
            if m.get("tool_calls"):
                clean["tool_calls"] = m["tool_calls"]
            clean["weight"] = 1 if train_on == "all" or i == last else 0
        elif role == "tool":
            clean["tool_call_id"] = m.get("tool_call_id")
        elif m.get("name"):
            clean["name"] = m["name"]
        out.append(clean)
    line: dict[str, Any] = {"messages": out}
    if tools:
        line["tools"] = tools
        if parallel is not None:
            line["parallel_tool_calls"] = parallel
    return _dumps(line) + "\n"


def _tool_definition(tool: Any) -> dict[str, Any]:
    if isinstance(tool, Mapping):
        return dict(tool)
    to_openai = getattr(tool, "to_openai", None)
    if to_openai is None:
        raise ConfigurationError(f"tools= takes Tool objects or chat-completions tool dicts; "
                                 f"got {type(tool).__name__}")
    definition: dict[str, Any] = to_openai()
    return definition


# --- validation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem of a fine-tuning file.

    Attributes:
        line: The 1-based line it is on (None for the whole file).
        message: What is wrong and how to fix it.
    """

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class TrainingStats:
    """Token counts of a fine-tuning file and what training on it would take.

    Attributes:
        examples: Lines (conversations).
        tokens: Tokens per example, in file order.
        exact: Whether the counts come from the real tokenizer (``o200k_base``) or are an
            estimate (about four characters a token).
        epochs: The epochs OpenAI would pick by default for this many examples.
        billed_tokens: Estimated training tokens billed: each example's tokens (up to the
            limit) times the epochs.
    """

    examples: int
    tokens: list[int]
    exact: bool
    epochs: int
    billed_tokens: int

    def __str__(self) -> str:
        kind = "exact (o200k_base)" if self.exact else "an estimate (~4 characters a token)"
        longest = max(self.tokens, default=0)
        return (f"{self.examples} examples, {sum(self.tokens)} tokens (longest {longest}; "
                f"counts are {kind}); default epochs {self.epochs}, about "
                f"{self.billed_tokens} training tokens billed")


def validate_jsonl(path: str | os.PathLike[str], *,
                   max_tokens: int = DEFAULT_MAX_TOKENS) -> list[ValidationIssue]:
    """Check a chat fine-tuning file the way OpenAI's data-preparation guide does: JSON
    objects with known keys, roles, missing content, tool calls answered by tool messages
    (and no result without its call), weights 0 or 1 on assistant messages only, an
    assistant message to train on, at least ten examples, and each example within
    ``max_tokens``. Returns the issues, each naming its line; empty means valid."""
    issues: list[ValidationIssue] = []
    count = 0
    counter = _token_counter()
    for number, example in _lines(path, issues):
        count += 1
        for problem in _example_issues(example):
            issues.append(ValidationIssue(number, problem))
        if isinstance(example, dict) and isinstance(example.get("messages"), list):
            tokens = _example_tokens(example, counter[0])
            if tokens > max_tokens:
                issues.append(ValidationIssue(number, (
                    f"{tokens} tokens{'' if counter[1] else ' (estimated)'} is over the limit "
                    f"of {max_tokens}; the excess is cut off in training: shorten it or "
                    "split the conversation")))
    if count < MIN_EXAMPLES:
        issues.append(ValidationIssue(None, f"{count} example(s): OpenAI needs at least "
                                            f"{MIN_EXAMPLES} (50 to 100 usually help)"))
    return issues


def training_stats(path: str | os.PathLike[str], *,
                   max_tokens: int = DEFAULT_MAX_TOKENS) -> TrainingStats:
    """Count the tokens of each example and estimate epochs and training tokens billed."""
    count, exact = _token_counter()
    tokens = [_example_tokens(example, count) for _, example in _lines(path, [])
              if isinstance(example, dict) and isinstance(example.get("messages"), list)]
    epochs = _epochs(len(tokens))
    billed = sum(min(max_tokens, t) for t in tokens) * epochs
    return TrainingStats(len(tokens), tokens, exact, epochs, billed)


def _lines(path: str | os.PathLike[str], issues: list[ValidationIssue]
           ) -> Iterable[tuple[int, Any]]:
    try:
        text_lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, text in enumerate(text_lines, 1):
        if not text.strip():
            issues.append(ValidationIssue(number, "empty line: remove it"))
            continue
        try:
            yield number, json.loads(text)
        except ValueError as exc:
            issues.append(ValidationIssue(number, f"not valid JSON: {exc}"))


def _example_issues(example: Any) -> list[str]:
    if not isinstance(example, dict):
        return [f"each line must be a JSON object with 'messages'; got "
                f"{type(example).__name__}"]
    problems = [f"unknown top-level key {key!r}: a line has only messages, tools and "
                "parallel_tool_calls" for key in sorted(set(example) - _TOP_KEYS)]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "missing 'messages': a non-empty list of messages is required"]
    tools = example.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(
            isinstance(t, dict) and t.get("type") == "function"
            and isinstance(t.get("function"), dict) and t["function"].get("name")
            for t in tools)):
        problems.append("'tools' must be a list of {type: function, function: {name, ...}}")
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        problems.append("'parallel_tool_calls' must be true or false")
    open_calls: dict[str, int] = {}
    trained = False
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(f"{where} is not an object")
            continue
        role = message.get("role")
        problems += [f"{where}: unknown key {key!r}"
                     for key in sorted(set(message) - _MESSAGE_KEYS)]
        if role not in _ROLES:
            problems.append(f"{where}: role {role!r} is not one of system, user, assistant, "
                            "tool")
            continue
        content, calls = message.get("content"), message.get("tool_calls")
        if (content is None or content == "") and not (role == "assistant" and calls):
            hint = "; assistant ones may have tool_calls instead" if role == "assistant" else ""
            problems.append(f"{where}: missing content ({role} messages need text{hint})")
        if "weight" in message:
            if role != "assistant":
                problems.append(f"{where}: weight is only for assistant messages")
            elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
                problems.append(f"{where}: weight must be 0 or 1, got {message['weight']!r}")
        if role != "tool" and open_calls:
            problems.append(f"{where}: a{'n' if role == 'assistant' else ''} {role} message "
                            f"before the result of tool call(s) {', '.join(sorted(open_calls))}")
            open_calls.clear()
        if role == "assistant":
            trained = trained or message.get("weight", 1) != 0
            for call in calls or ():
                call_id = call.get("id") if isinstance(call, dict) else None
                function = call.get("function") if isinstance(call, dict) else None
                if not call_id or not isinstance(function, dict) or not function.get("name"):
                    problems.append(f"{where}: a tool call needs id and function.name")
                    continue
                open_calls[call_id] = index
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                problems.append(f"{where}: tool result for {call_id!r}, which no earlier "
                                "assistant message called")
            else:
                del open_calls[call_id]
    problems += [f"messages[{index}]: tool call {call_id!r} has no tool result"
                 for call_id, index in open_calls.items()]
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append("no assistant message: there is nothing to train on")
    elif not trained:
        problems.append("every assistant message has weight 0: give the one to train on "
                        "weight 1 (or no weight)")
    return problems


def _epochs(examples: int) -> int:
    if examples == 0:
        return 0
    if examples * _TARGET_EPOCHS < _MIN_TARGET:
        return min(_MAX_EPOCHS, _MIN_TARGET // examples)
    if examples * _TARGET_EPOCHS > _MAX_TARGET:
        return max(1, _MAX_TARGET // examples)
    return _TARGET_EPOCHS


@lru_cache(maxsize=1)
def _token_counter() -> tuple[Callable[[str], int], bool]:
    """``(count, exact)``: the o200k_base tokenizer when the ``finetune`` extra is
    installed (it ships its tables, no download), else about four characters a token."""
    with warnings.catch_warnings():
        # Its table loader uses a deprecated importlib.resources call; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            # Loaded by name: typed or not, it is used dynamically here.
            bpe_openai = importlib.import_module("bpe_openai")
        except ImportError:
            return (lambda text: (len(text) + 3) // 4), False
        encoding = bpe_openai.get_encoding("o200k_base")
        encoding.encode("load the tables now")

    # Training files repeat the same strings (tool definitions, instructions) on every
    # line: counting each once makes validation of large files several times faster.
    @lru_cache(maxsize=65_536)
    def count(text: str) -> int:
        return len(encoding.encode(text))

    return count, True


def _example_tokens(example: dict[str, Any], count: Callable[[str], int]) -> int:
    # The chat format's framing: ~3 tokens around each message and 3 to prime the answer
    # (the same accounting as OpenAI's data-preparation guide).
    total = 3
    for message in example["messages"]:
        if not isinstance(message, dict):
            continue
        total += 3
        for key, value in message.items():
            if key == "weight" or value is None:
                continue
            text = value if isinstance(value, str) else _dumps(value)
            total += count(text) + (1 if key == "name" else 0)
    if example.get("tools"):
        total += count(_dumps(example["tools"]))
    return total
