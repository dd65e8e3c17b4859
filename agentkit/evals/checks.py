"""Checks: what an eval asserts about one run of one case.

A :class:`Check` looks at an :class:`Observation` (the case, the agent's output, the
run's messages, usage, latency, or the error it raised) and returns a
:class:`CheckResult`: passed or not, a score in [0, 1] and a reason a person can read.
Build them with the functions here (``contains("Paris")``, ``tool_called("get_weather",
args={"city": "Paris"})``...), with :func:`agentkit.evals.judge`, or wrap your own
function with :func:`check`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentkit.errors import ConfigurationError

if TYPE_CHECKING:
    from agentkit.evals.dataset import Case
    from agentkit.run import RunResult

__all__ = [
    "Check",
    "CheckResult",
    "Observation",
    "check",
    "contains",
    "equals",
    "json_schema",
    "latency",
    "max_cost_usd",
    "max_turns",
    "output_type",
    "regex",
    "tool_called",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check on one run.

    Attributes:
        name: The check, e.g. ``"contains('Paris')"``.
        passed: Whether the run met it.
        score: 1.0 or 0.0 for yes/no checks; a judge's score in between.
        reason: Why, in words (shown in reports).
    """

    name: str
    passed: bool
    score: float
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"name": self.name, "passed": self.passed, "score": self.score,
                "reason": self.reason}


@dataclass(slots=True)
class Observation:
    """What a check sees of one run of a case.

    Attributes:
        case: The case that was run.
        output: The agent's final output (None when the run failed).
        result: The whole :class:`~agentkit.RunResult` (None when the run raised).
        error: The exception the run raised, if any.
        latency: Seconds the run took.
    """

    case: Case
    output: Any
    result: RunResult[Any] | None
    error: BaseException | None
    latency: float

    @property
    def text(self) -> str:
        """The output as text: strings as they are, anything else as JSON."""
        return output_text(self.output)


CheckFunction = Callable[[Observation], "CheckResult | bool | Awaitable[CheckResult | bool]"]


@dataclass(frozen=True)
class Check:
    """One named check; call :meth:`evaluate` on an :class:`Observation`.

    Attributes:
        name: How reports name it.
        function: ``fn(observation)`` returning a :class:`CheckResult` or a bool (sync or
            async).
        spec: The dataset-file form (e.g. ``{"contains": "Paris"}``), so the check can be
            saved; None for checks made from your own functions.
        needs_output: Fail at once, without calling ``function``, when the run raised.
    """

    name: str
    function: CheckFunction = field(repr=False)
    spec: dict[str, Any] | None = field(default=None, repr=False)
    needs_output: bool = True

    async def evaluate(self, observation: Observation) -> CheckResult:
        """Run the check; an exception inside it is a failed check that says so."""
        if self.needs_output and observation.error is not None:
            return CheckResult(self.name, False, 0.0,
                               f"the run failed: {type(observation.error).__name__}: "
                               f"{observation.error}")
        try:
            verdict = self.function(observation)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as exc:
            return CheckResult(self.name, False, 0.0,
                               f"the check raised {type(exc).__name__}: {exc}")
        if isinstance(verdict, CheckResult):
            return verdict
        passed = bool(verdict)
        return CheckResult(self.name, passed, 1.0 if passed else 0.0)


def check(function: CheckFunction | None = None, *, name: str | None = None) -> Any:
    """Make a :class:`Check` of your own function of an :class:`Observation` (returning a
    bool or a :class:`CheckResult`); usable as ``@check`` or ``check(fn, name=...)``."""

    def wrap(fn: CheckFunction) -> Check:
        return Check(name or str(getattr(fn, "__name__", "check")), fn)

    return wrap if function is None else wrap(function)


def output_text(output: Any) -> str:
    """An output as text: strings as they are, anything else as compact JSON."""
    if isinstance(output, str):
        return output
    if output is None:
        return ""
    from pydantic_core import to_jsonable_python

    return json.dumps(to_jsonable_python(output), ensure_ascii=False, sort_keys=True)


def _plain(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _verdict(name: str, passed: bool, reason: str) -> CheckResult:
    return CheckResult(name, passed, 1.0 if passed else 0.0, reason)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def equals(expected: Any) -> Check:
    """The output equals ``expected`` (a structured output is compared as JSON)."""
    name = f"equals({_clip(repr(expected), 40)})"

    def run(o: Observation) -> CheckResult:
        actual = o.output if isinstance(o.output, str) else _plain(o.output)
        wanted = expected if isinstance(expected, str) else _plain(expected)
        if isinstance(actual, str) and not isinstance(wanted, str):
            wanted = output_text(wanted)  # a text answer "42" equals a YAML 42
        if isinstance(actual, str) and isinstance(wanted, str):
            actual, wanted = actual.strip(), wanted.strip()
        if actual == wanted:
            return _verdict(name, True, "the output is as expected")
        return _verdict(name, False, f"got {_clip(output_text(o.output))!r}")

    return Check(name, run, {"equals": expected})


def contains(text: str, *, case_sensitive: bool = False) -> Check:
    """The output (as text) contains ``text`` (ignoring case unless ``case_sensitive``)."""
    name = f"contains({text!r})"

    def run(o: Observation) -> CheckResult:
        haystack, needle = o.text, text
        if not case_sensitive:
            haystack, needle = haystack.lower(), needle.lower()
        if needle in haystack:
            return _verdict(name, True, "found")
        return _verdict(name, False, f"not in {_clip(o.text)!r}")

    spec: dict[str, Any] = {"contains": text}
    return Check(name, run, spec if not case_sensitive else {"contains": text,
                                                               "case_sensitive": True})


def regex(pattern: str) -> Check:
    """The output (as text) matches ``pattern`` somewhere (``re.search``)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"regex check: {pattern!r} is not a valid pattern: {exc}"
        ) from None
    name = f"regex({pattern!r})"

    def run(o: Observation) -> CheckResult:
        if compiled.search(o.text):
            return _verdict(name, True, "matched")
        return _verdict(name, False, f"no match in {_clip(o.text)!r}")

    return Check(name, run, {"regex": pattern})


def json_schema(schema: Mapping[str, Any]) -> Check:
    """The output (a JSON text, or a structured output) is valid against ``schema``
    (needs ``jsonschema``: ``pip install 'agentkit[evals]'``)."""
    name = "json_schema"

    def run(o: Observation) -> CheckResult:
        try:
            # Loaded by name: typed or not, it is used dynamically here.
            jsonschema = importlib.import_module("jsonschema")
        except ImportError:
            raise ConfigurationError(
                "the json_schema check needs jsonschema: pip install 'agentkit[evals]'"
            ) from None
        value = o.output
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                return _verdict(name, False, f"the output is not JSON: {exc}")
        else:
            value = _plain(value)
        problems = sorted(jsonschema.Draft202012Validator(dict(schema)).iter_errors(value),
                          key=lambda e: list(e.path))
        if not problems:
            return _verdict(name, True, "valid")
        first = problems[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return _verdict(name, False, f"{where}: {first.message}")

    return Check(name, run, {"json_schema": dict(schema)})


def output_type(type_: Any) -> Check:
    """The output validates as ``type_`` (a pydantic model, dataclass, TypedDict, ...)."""
    from pydantic import TypeAdapter, ValidationError

    adapter: TypeAdapter[Any] = TypeAdapter(type_)
    name = f"output_type({getattr(type_, '__name__', repr(type_))})"

    def run(o: Observation) -> CheckResult:
        value = o.output
        try:
            if isinstance(value, str) and type_ is not str:
                adapter.validate_json(value)
            else:
                adapter.validate_python(_plain(value) if not isinstance(value, type_) else value)
        except (ValidationError, TypeError) as exc:
            return _verdict(name, False, _clip(str(exc).replace("\n", " "), 160))
        return _verdict(name, True, "valid")

    return Check(name, run)


def tool_called(tool: str, args: Mapping[str, Any] | None = None) -> Check:
    """The run called ``tool``; with ``args``, at least once with these argument values
    (other arguments may be present too)."""
    shown = f", args={dict(args)!r}" if args else ""
    name = f"tool_called({tool!r}{shown})"

    def run(o: Observation) -> CheckResult:
        calls = [c for c in (o.result.tool_calls() if o.result else []) if c.name == tool]
        if not calls:
            made = sorted({c.name for c in o.result.tool_calls()}) if o.result else []
            return _verdict(name, False, f"{tool} was not called (called: "
                                         f"{', '.join(made) or 'no tool'})")
        if not args:
            return _verdict(name, True, f"called {len(calls)} time(s)")
        for call in calls:
            try:
                given = call.parsed_arguments()
            except ValueError:
                continue
            if isinstance(given, dict) and all(given.get(k) == v for k, v in args.items()):
                return _verdict(name, True, f"called with {call.arguments}")
        return _verdict(name, False, "called, but with " + "; ".join(c.arguments for c in calls))

    spec: dict[str, Any] = {"name": tool}
    if args:
        spec["args"] = dict(args)
    return Check(name, run, {"tool_called": spec})


def max_turns(limit: int) -> Check:
    """The run took at most ``limit`` model requests."""
    name = f"max_turns({limit})"

    def run(o: Observation) -> CheckResult:
        turns = o.result.turns if o.result else 0
        return _verdict(name, turns <= limit, f"{turns} turn(s)")

    return Check(name, run, {"max_turns": limit})


def max_cost_usd(limit: float) -> Check:
    """The run cost at most ``limit`` dollars. Fails when the cost is unknown (the model
    has no price), rather than passing unchecked."""
    name = f"max_cost_usd({limit})"

    def run(o: Observation) -> CheckResult:
        cost = getattr(o.result.usage, "cost_usd", None) if o.result else None
        if cost is None:
            return _verdict(name, False, "the cost is unknown: the model has no price "
                                         "(see agentkit.pricing), so the limit cannot be checked")
        return _verdict(name, cost <= limit, f"${cost:.6f}")

    return Check(name, run, {"max_cost_usd": limit})


def latency(max_seconds: float) -> Check:
    """The run took at most ``max_seconds`` of wall-clock time."""
    name = f"latency({max_seconds}s)"

    def run(o: Observation) -> CheckResult:
        return _verdict(name, o.latency <= max_seconds, f"{o.latency:.3f} s")

    return Check(name, run, {"latency": max_seconds})


def from_spec(spec: Any) -> Check:
    """A check from its dataset-file form, e.g. ``{"contains": "Paris"}``."""
    from agentkit.evals.judge import judge

    if not isinstance(spec, Mapping) or not spec:
        raise ConfigurationError(f"a check is a one-key mapping like {{contains: Paris}}; "
                                 f"got {spec!r:.120}")
    kind = next(iter(spec))
    value = spec[kind]
    options = {k: v for k, v in spec.items() if k != kind}
    simple: dict[str, Callable[..., Check]] = {
        "equals": equals, "contains": contains, "regex": regex, "json_schema": json_schema,
        "max_turns": max_turns, "max_cost_usd": max_cost_usd, "latency": latency,
    }
    if kind in simple:
        return simple[kind](value, **options)
    if kind == "tool_called":
        if isinstance(value, str):
            return tool_called(value)
        if isinstance(value, Mapping) and "name" in value:
            return tool_called(value["name"], value.get("args"))
    if kind == "judge":
        if isinstance(value, str):
            return judge(value)
        if isinstance(value, Mapping) and "rubric" in value:
            return judge(**dict(value))
    raise ConfigurationError(
        f"unknown check {dict(spec)!r:.120}: use one of equals, contains, regex, "
        "json_schema, tool_called: {name, args}, max_turns, max_cost_usd, latency, "
        "judge: {rubric, model}"
    )
