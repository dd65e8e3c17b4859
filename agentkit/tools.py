"""Tools: a Python function becomes a JSON-schema tool definition and a validated call.

``@tool`` reads the signature, type hints and docstring once, at decoration, and builds
the tool's JSON schema (strict form when possible). ``Tool.invoke`` turns a model's
arguments into a call: parse, validate, run (sync functions in a worker thread), and
render the result as text. Bad arguments, exceptions and timeouts come back as error
:class:`ToolResult` values the model can read and correct; they never raise.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
import re
import sys
import threading
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import anyio.to_thread
import pydantic
import pydantic_core
import typing_extensions
from pydantic.fields import FieldInfo
from typing_extensions import ParamSpec

from agentkit import schema as _schema
from agentkit._docstrings import parse_docstring
from agentkit._secrets import redact
from agentkit.errors import (
    ToolArgumentsError,
    ToolCallError,
    ToolDefinitionError,
    ToolError,
    ToolTimeout,
)
from agentkit.usage import Usage

if TYPE_CHECKING:
    from agentkit.messages import Message

__all__ = ["RunContext", "Tool", "ToolDefinition", "ToolResult", "tool"]

logger = logging.getLogger("agentkit")

P = ParamSpec("P")
R = TypeVar("R")
DepsT = TypeVar("DepsT")


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """What a model is told about one tool: name, description and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False

    def to_openai(self) -> dict[str, Any]:
        """The ``tools`` entry of a chat-completions request."""
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


@dataclass(slots=True)
class RunContext(Generic[DepsT]):
    """What a tool (or dynamic instructions) can see of the run it is part of.

    Declare a parameter ``ctx: RunContext[MyDeps]`` on a tool to receive it; it is never
    part of the tool's schema.

    Attributes:
        deps: The ``context=`` object passed to ``agent.run`` (your dependencies).
        usage: Usage of the run so far.
        messages: The conversation so far (read it, do not mutate it).
        tool_name: The tool being called (None outside a tool call).
        tool_call_id: The id of the call being answered (None outside a tool call).
        turn: The 1-based number of the current model turn.
        cancel_event: Set when the tool call is cancelled; read it as :attr:`cancelled`.
        idempotency_key: In a durable run (:mod:`agentkit.durable`),
            ``f"{run_id}:{call_id}"``: the same for every attempt of this call, across
            crashes and workers; pass it to the service the tool calls so that a call run
            again has no second effect. None outside durable runs.
    """

    deps: DepsT
    usage: Usage = field(default_factory=Usage)
    messages: list[Message] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None
    turn: int = 0
    idempotency_key: str | None = None
    cancel_event: threading.Event = field(
        default_factory=threading.Event, repr=False, compare=False
    )

    @property
    def cancelled(self) -> bool:
        """True once the tool call was cancelled: its timeout passed, or the run was
        cancelled (Ctrl-C included).

        Python cannot stop a thread from outside, so a sync tool keeps running in its
        worker thread after a cancellation unless it polls this and returns early.
        """
        return self.cancel_event.is_set()


ApprovalRule = bool | Callable[[RunContext[Any], dict[str, Any]], bool | Awaitable[bool]]
"""``needs_approval``: always/never, or a predicate of the run context and the arguments."""


@dataclass(slots=True)
class ToolResult:
    """The outcome of one tool invocation.

    Attributes:
        content: The text the model will read.
        is_error: True when the call failed (bad arguments, exception, timeout).
        value: The function's return value (None on error).
        error: The :class:`~agentkit.errors.ToolCallError`, or None on success.
    """

    content: str
    is_error: bool = False
    value: Any = None
    error: ToolCallError | None = None


# --- binding arguments ----------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MISSING: Any = object()
_Problem = tuple[tuple[Any, ...], str, Any]  # (location, message, given value)
_EXTRA = "Extra inputs are not permitted"


class _BadArguments(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


@dataclass(slots=True)
class _Signature:
    """How a tool's JSON arguments become a call of its function. Every kind of tool
    (decorated function, hand-written schema, pydantic model) binds through :meth:`bind`.

    ``validate`` returns the validated values (a dict of parameters, or, when ``whole``,
    the one object the function receives) or raises ``pydantic.ValidationError`` or
    ``_BadArguments``.
    """

    parameters: dict[str, Any]  # the JSON schema, before the strict transform
    validate: Callable[[dict[str, Any]], Any]
    context_param: str | None = None
    positional: tuple[str, ...] = ()  # positional-only parameters, in order
    defaults: dict[str, Any] = field(default_factory=dict)  # filled in when left out
    known: frozenset[str] | None = None  # names to check here (validate ignores unknown)
    whole: bool = False
    self_param: str | None = None  # 'self'/'cls' of a method: bound by Tool.__get__
    bind_owner: bool = False  # a classmethod: binds to the class

    def bind(self, data: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        problems: list[_Problem] = []
        try:
            value = self.validate(data)
        except pydantic.ValidationError as exc:
            problems = [(e["loc"], e["msg"], e.get("input")) for e in exc.errors(include_url=False)]
        except _BadArguments as bad:
            problems = bad.problems
        if self.known is not None:
            problems += [((k,), _EXTRA, v) for k, v in data.items() if k not in self.known]
        if problems:
            raise _BadArguments(problems)
        if self.whole:
            return (value,), {}
        for key, default in self.defaults.items():
            value.setdefault(key, default)
        # A positional-only argument the model left out took its default above, so the
        # ones after it do not shift into its place.
        return tuple(value.pop(n) for n in self.positional), value


def _typed_dict_validator(
    name: str, annotations: dict[str, Any], optional: set[str]
) -> Callable[[dict[str, Any]], Any]:
    """Validation with a TypedDict of the parameters. pydantic compiles it on first use:
    compiling costs more than the whole decoration budget."""
    adapter: pydantic.TypeAdapter[Any] | None = None

    def validate(data: dict[str, Any]) -> Any:
        nonlocal adapter
        if adapter is None:
            fields = {
                n: typing_extensions.NotRequired[a] if n in optional else a
                for n, a in annotations.items()
            }
            arguments = typing_extensions.TypedDict(f"{name}_arguments", fields)  # type: ignore[misc]
            arguments.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")  # type: ignore[attr-defined]
            adapter = pydantic.TypeAdapter(arguments)
        return adapter.validate_python(data)

    return validate


def _function_signature(
    function: Callable[..., Any], name: str, in_class: bool, bind_owner: bool
) -> tuple[_Signature, str]:
    """Read ``function`` once: the JSON schema of its parameters, how to bind arguments
    to it, and its docstring's description."""
    where = _qualname(function)
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"Cannot make a tool from {where}: its signature cannot be read ({exc}). "
            "Fix: wrap it in a plain Python function with annotated parameters."
        ) from None
    hints = _type_hints(function, where)
    doc = parse_docstring(getattr(function, "__doc__", None))
    signature = _Signature({}, _MISSING, bind_owner=bind_owner)
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    required: list[str] = []
    positional: list[str] = []
    for index, param in enumerate(params):
        if index == 0 and in_class and param.name in ("self", "cls"):
            signature.self_param = param.name
            continue
        if param.kind is param.VAR_POSITIONAL or param.kind is param.VAR_KEYWORD:
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"Cannot make a tool from {where}: parameter '{stars}{param.name}' takes a "
                "variable number of arguments, which a JSON schema cannot describe. Fix: "
                "declare each parameter explicitly, or take one list/dict parameter."
            )
        annotation = hints.get(param.name, _MISSING)
        if annotation is _MISSING:
            raise ToolDefinitionError(
                f"Cannot make a tool from {where}: parameter '{param.name}' has no type "
                f"annotation. Fix: annotate it, e.g. `{param.name}: str`."
            )
        if _is_run_context(annotation):
            if signature.context_param is not None:
                raise ToolDefinitionError(
                    f"Cannot make a tool from {where}: parameters "
                    f"'{signature.context_param}' and '{param.name}' are both RunContext. "
                    "Fix: keep one RunContext parameter."
                )
            signature.context_param = param.name
            continue
        try:
            prop = _schema.type_schema(annotation, defs)
        except _schema.UnsupportedTypeError as exc:
            raise ToolDefinitionError(
                f"Cannot make a tool from {where}: parameter '{param.name}' {exc.reason}. "
                f"Fix: {exc.fix}."
            ) from None
        if "description" not in prop and param.name in doc.params:
            prop["description"] = doc.params[param.name]
        default = param.default
        if default is param.empty:
            default = _field_default(annotation)  # Annotated[T, Field(default=...)]
            if default is not _MISSING:
                signature.defaults[param.name] = default
        elif param.kind is param.POSITIONAL_ONLY:
            signature.defaults[param.name] = default
        if default is _MISSING:
            required.append(param.name)
        elif (jsonable := _jsonable(default)) is not _MISSING:
            prop["default"] = jsonable
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
        properties[param.name] = prop
        annotations[param.name] = annotation
    signature.parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if defs:
        signature.parameters["$defs"] = defs
    signature.positional = tuple(positional)
    signature.validate = _typed_dict_validator(name, annotations, set(annotations) - {*required})
    return signature, doc.description


def _schema_signature(parameters: dict[str, Any], function: Callable[..., Any]) -> _Signature:
    """A hand-written schema: the function gets the checked arguments as keywords."""

    def validate(data: dict[str, Any]) -> dict[str, Any]:
        problems = _schema.instance_errors(parameters, data)
        if problems:
            raise _BadArguments([(loc, msg, _input_at(data, loc)) for loc, msg in problems])
        return data

    return _Signature(parameters, validate, _context_param(function))


def _check_name(name: str, function: Callable[..., Any]) -> None:
    if not _NAME.match(name):
        raise ToolDefinitionError(
            f"Cannot make a tool from {_qualname(function)}: its name {name!r} is not a "
            "valid tool name (1-64 letters, digits, '_' or '-'). Fix: pass name='...' to "
            "@tool, Tool() or Tool.from_model()."
        )


def _is_run_context(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation is RunContext or typing.get_origin(annotation) is RunContext


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - callable objects
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def _type_hints(function: Callable[..., Any], where: str) -> dict[str, Any]:
    target = function
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        target = getattr(function, "__call__", function)  # noqa: B004
    try:
        return typing.get_type_hints(target, include_extras=True)
    except NameError as first:
        # A class defined in the enclosing function cannot be found from the function's
        # module globals (typical with `from __future__ import annotations`): retry with
        # the locals of the frame that applied the decorator.
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") == __name__:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None:
            try:
                return typing.get_type_hints(target, localns=frame.f_locals, include_extras=True)
            except NameError:
                pass
        raise ToolDefinitionError(
            f"Cannot make a tool from {where}: the annotation {first.name!r} cannot be "
            f"resolved ({first}). Fix: import or define {first.name!r} at module level, "
            "where the function's annotations are evaluated."
        ) from None


def _context_param(function: Callable[..., Any]) -> str | None:
    try:
        names = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return None
    hints = _type_hints(function, _qualname(function))
    return next((n for n in names if n in hints and _is_run_context(hints[n])), None)


def _field_default(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        for item in typing.get_args(annotation)[1:]:
            if isinstance(item, FieldInfo) and not item.is_required():
                return item.get_default(call_default_factory=True)
    return _MISSING


def _jsonable(value: Any) -> Any:
    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError:
        return _MISSING


def _qualname(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"function '{module}.{name}'" if module else f"function '{name}'"


def _drop_nulls(value: Any, node: dict[str, Any], strict: _schema.StrictSchema) -> Any:
    """Remove ``null`` from properties strict mode made nullable (null = "use default")."""
    if "$ref" in node:
        node = _schema.resolve_ref(strict.schema, node["$ref"])
    if isinstance(value, dict):
        names = strict.null_means_default.get(id(node))
        if names:
            value = {k: v for k, v in value.items() if not (v is None and k in names)}
        properties = node.get("properties")
        if properties:
            value = {
                k: _drop_nulls(v, properties[k], strict) if k in properties else v
                for k, v in value.items()
            }
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [_drop_nulls(v, node["items"], strict) for v in value]
    for branch in node.get("anyOf", ()):
        value = _drop_nulls(value, branch, strict)
    return value


# --- the Tool -----------------------------------------------------------------------


class Tool(Generic[P, R]):
    """A function the model can call: its name, description, JSON schema and invocation.

    Build one with :func:`tool`, by hand with ``Tool(name, description, parameters,
    function)`` (the function is called with the arguments as keyword arguments, checked
    against ``parameters``), or with :meth:`Tool.from_model`. A tool is still callable
    like the original function.

    Attributes:
        name: The name the model calls the tool by.
        description: What the tool does, for the model.
        parameters: The JSON schema of the arguments (strict form when ``strict``).
        strict: Whether the schema is sent in OpenAI strict mode.
        timeout: Seconds before a call is cancelled (None: no limit).
        max_retries: How many consecutive failures the run loop tolerates.
        needs_approval: True, or a predicate ``(ctx, arguments) -> bool`` (sync or
            async): a call the rule holds for waits for a person's approval (the run
            stops with ``status="requires_action"``).
        external: The caller runs this tool: a call stops the run with
            ``status="requires_action"`` until its output is submitted.
        takes_context: Whether the function receives a :class:`RunContext`.
        function: The original function.
    """

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        function: Callable[..., Any],
        *,
        strict: bool | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        needs_approval: ApprovalRule = False,
        external: bool = False,
        _signature: _Signature | None = None,
    ) -> None:
        if _signature is None:  # a hand-written schema
            if parameters.get("type") != "object":
                raise ToolDefinitionError(
                    f"Tool {name!r}: parameters must be a JSON schema of type 'object', got "
                    f"{json.dumps(parameters)[:80]}. Fix: wrap them as "
                    '{"type": "object", "properties": {...}}.'
                )
            _signature = _schema_signature(copy.deepcopy(parameters), function)
        _check_name(name, function)
        if timeout is not None and timeout <= 0:
            raise ToolDefinitionError(f"Tool {name!r}: timeout must be > 0, got {timeout!r}.")
        if max_retries < 0:
            raise ToolDefinitionError(
                f"Tool {name!r}: max_retries must be >= 0, got {max_retries!r}."
            )
        if external and needs_approval is not False:
            raise ToolDefinitionError(
                f"Tool {name!r}: an external tool is run by the caller, so it cannot also "
                "need approval. Fix: drop needs_approval (the caller decides anyway)."
            )
        self.name = name
        self.description = description
        self.function = function
        self.timeout = timeout
        self.max_retries = max_retries
        self.needs_approval = needs_approval
        self.external = external
        self.takes_context = _signature.context_param is not None
        self._signature = _signature
        self._needs_instance = _signature.self_param
        self._is_async = _is_async(function)
        self._definition: ToolDefinition | None = None
        schema = _signature.parameters
        # Optional parameters whose type rejects null: a null from the model means "use
        # the default" (strict mode makes them nullable; some models send null anyway).
        required = set(schema.get("required", ()))
        self._null_top = frozenset(
            n
            for n, p in schema.get("properties", {}).items()
            if n not in required and isinstance(p, dict) and not _schema.allows_null(p)
        )
        self._null_nested: _schema.StrictSchema | None = None
        self.strict = False
        self.parameters = schema
        if strict is False:
            return
        try:
            strict_schema = _schema.to_strict(schema)
        except _schema.NotStrictError as exc:
            if strict:
                raise ToolDefinitionError(
                    f"Tool {name!r} cannot use strict mode: {exc}. Fix: change that "
                    "parameter's type, or pass strict=None (strict when possible) or False."
                ) from None
            return
        self.strict = True
        self.parameters = strict_schema.schema
        nested = {
            k: v for k, v in strict_schema.null_means_default.items() if k != id(self.parameters)
        }
        if nested:  # only pay for the walk when a nested object has optional fields
            self._null_nested = _schema.StrictSchema(self.parameters, nested)

    @classmethod
    def from_model(
        cls,
        model: type[pydantic.BaseModel],
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
    ) -> Tool[Any, Any]:
        """A tool whose arguments are the fields of a pydantic ``model``.

        ``function`` receives one positional argument, the validated model instance (plus
        a :class:`RunContext` keyword argument if it declares one). The name defaults to
        the function's, the description to the function's docstring, then the model's.
        """
        schema = _schema.strip_titles(model.model_json_schema(ref_template="#/$defs/{model}"))
        model_doc = schema.pop("description", "")
        if description is None:
            description = parse_docstring(function.__doc__).description or model_doc
        extra = model.model_config.get("extra")
        if extra != "allow":
            schema["additionalProperties"] = False
        known = None if extra in ("allow", "forbid") else frozenset(schema.get("properties", {}))
        signature = _Signature(
            schema, model.model_validate, _context_param(function), known=known, whole=True
        )
        name = name or str(getattr(function, "__name__", model.__name__))
        return cls(
            name, description, schema, function, strict=strict, timeout=timeout,
            max_retries=max_retries, _signature=signature,
        )  # fmt: skip

    # --- behaving like the function ---

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the original function directly (no validation)."""
        return self.function(*args, **kwargs)  # type: ignore[no-any-return]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Tool[P, R]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Tool[..., R]: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Tool[..., R]:
        """On a class, ``obj.method`` is a tool bound to ``obj`` (``self`` is not part of
        the schema); a classmethod tool binds to the class."""
        if self._needs_instance is None:
            return self
        target = owner if self._signature.bind_owner else instance
        if target is None:
            return self
        bound: Tool[..., R] = copy.copy(self)
        bound.function = types.MethodType(self.function, target)
        bound._needs_instance = None
        return bound

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, strict={self.strict}, timeout={self.timeout!r})"

    # --- definition ---

    @property
    def definition(self) -> ToolDefinition:
        """The :class:`ToolDefinition` sent to models (built once)."""
        if self._definition is None:
            self._definition = ToolDefinition(
                self.name, self.description, self.parameters, self.strict
            )
        return self._definition

    def to_openai(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry: ``{"type": "function", "function": ...}``."""
        return self.definition.to_openai()

    # --- invocation ---

    async def requires_approval(self, context: RunContext[Any], arguments: str) -> bool:
        """Whether a call with ``arguments`` (JSON text) must wait for a person's approval.

        Arguments that are not a JSON object need none: the call fails validation without
        running the function.
        """
        rule = self.needs_approval
        if not callable(rule):
            return bool(rule)
        try:
            data = json.loads(arguments or "{}")
        except ValueError:
            return False
        if not isinstance(data, dict):
            return False
        verdict = rule(context, data)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    async def invoke(
        self, arguments: str | Mapping[str, Any] | None, context: RunContext[Any] | None = None
    ) -> ToolResult:
        """Validate ``arguments`` (JSON text or a mapping; ``""``/None mean ``{}``), call
        the function and return its result as text.

        Never raises for bad arguments, an exception in the function or a timeout: those
        come back as ``ToolResult(is_error=True)`` with a message the model can act on.
        Cancellation of the surrounding task propagates. On a timeout or a cancellation,
        ``context.cancelled`` becomes true (a sync function cannot be stopped otherwise).
        """
        if self._needs_instance is not None:
            raise ToolDefinitionError(
                f"Tool {self.name!r} is a method: invoke it through an instance "
                f"(obj.{self.name}) so that '{self._needs_instance}' is bound."
            )
        try:
            args, kwargs = self._bind_arguments(arguments)
        except ToolArgumentsError as bad:
            return ToolResult(content=str(bad), is_error=True, error=bad)
        if self._signature.context_param is not None:
            context = context if context is not None else RunContext(None)
            kwargs[self._signature.context_param] = context
        try:
            with anyio.move_on_after(self.timeout) as scope:
                if self._is_async:
                    value = await self.function(*args, **kwargs)
                else:
                    # A thread cannot be stopped: on cancellation it is abandoned, and
                    # learns of it through ctx.cancelled.
                    call = functools.partial(self.function, *args, **kwargs)
                    value = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
            if not scope.cancelled_caught:
                return ToolResult(content=_to_text(value), value=value)
        except Exception as exc:
            return self._failure(exc)
        except BaseException:  # cancelled, Ctrl-C
            if context is not None:
                context.cancel_event.set()
            raise
        if context is not None:
            context.cancel_event.set()
        timeout = self.timeout or 0.0
        message = f"Tool '{self.name}' did not finish within {timeout:g} seconds and was cancelled."
        error = ToolTimeout(message, tool_name=self.name, timeout=timeout)
        return ToolResult(content=message, is_error=True, error=error)

    def _failure(self, exc: Exception) -> ToolResult:
        text = str(exc)
        shown = redact(text)  # the message reaches the model, the next request and logs
        kind = type(exc).__name__
        message = f"Tool '{self.name}' raised {kind}" + (f": {shown}" if shown else "")
        logger.debug("tool %s raised %s", self.name, kind)
        error = ToolError(message, tool_name=self.name, exception=exc)
        if shown == text:
            # Chained only when clean: a printed traceback shows the cause's text.
            error.__cause__ = exc
        return ToolResult(content=message, is_error=True, error=error)

    def _bind_arguments(
        self, arguments: str | Mapping[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        data: Any = arguments
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            data = {}
        elif isinstance(arguments, str):
            try:
                data = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise self._arguments_error(
                    f"the arguments are not valid JSON ({exc.msg} at line {exc.lineno} "
                    f"column {exc.colno}). Send a single JSON object."
                ) from None
        elif isinstance(arguments, Mapping):
            data = dict(arguments)
        if not isinstance(data, dict):
            raise self._arguments_error(
                f"the arguments must be a JSON object, got {_json_kind(data)} "
                f"{_show(data)}. Send a single JSON object with the parameters as keys."
            )
        if self._null_top:
            data = {k: v for k, v in data.items() if not (v is None and k in self._null_top)}
        if self._null_nested is not None:
            data = _drop_nulls(data, self._null_nested.schema, self._null_nested)
        try:
            return self._signature.bind(data)
        except _BadArguments as bad:
            lines = [
                _problem_line(loc, msg, given, self.parameters) for loc, msg, given in bad.problems
            ]
            raise self._arguments_error(
                "\n".join(lines) + f"\nFix the arguments and call '{self.name}' again.",
                multiline=True,
            ) from None
        except Exception as exc:  # a validator in user code raised something unexpected
            raise self._arguments_error(
                f"validating them raised {type(exc).__name__}: {redact(str(exc))}. Fix the "
                f"arguments and call '{self.name}' again."
            ) from exc

    def _arguments_error(self, detail: str, *, multiline: bool = False) -> ToolArgumentsError:
        separator = ":\n" if multiline else ": "
        return ToolArgumentsError(
            f"Invalid arguments for tool '{self.name}'{separator}{detail}", tool_name=self.name
        )


# --- messages for the model -----------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _to_text(value: Any) -> str:
    """The text the model reads. It is always valid UTF-8, so it can be sent: undecodable
    bytes and lone surrogates (``os.fsdecode`` of a bad file name) become U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None:
        return ""
    try:
        return pydantic_core.to_json(value, serialize_unknown=True).decode()
    except pydantic_core.PydanticSerializationError:
        # Bad bytes or surrogates inside the value: bytes as base64, text cleaned.
        plain = pydantic_core.to_jsonable_python(
            value, serialize_unknown=True, bytes_mode="base64"
        )
        return _to_text(json.dumps(plain, ensure_ascii=False, separators=(",", ":")))


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_KINDS.get(type(value)) or (
        "a number" if isinstance(value, float) else f"a {type(value).__name__}"
    )


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(arguments)"


def _schema_at(schema: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any] | None:
    node: Any = schema
    for part in loc:
        if not isinstance(node, dict):
            return None
        if "$ref" in node:
            node = _schema.resolve_ref(schema, node["$ref"])
        if "anyOf" in node:
            objects = [b for b in node["anyOf"] if not _schema.allows_null(b)]
            node = objects[0] if len(objects) == 1 else node
            if "$ref" in node:
                node = _schema.resolve_ref(schema, node["$ref"])
        node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
    return node if isinstance(node, dict) else None


def _problem_line(
    loc: tuple[Any, ...], message: str, given: Any, parameters: dict[str, Any]
) -> str:
    where = _location(loc)
    if message == "Field required":
        expected = _schema_at(parameters, loc)
        detail = f" (expected {_schema.describe(expected)})" if expected else ""
        return f"- {where}: missing required field{detail}"
    if message == _EXTRA:
        parent = _schema_at(parameters, loc[:-1]) or {}
        allowed = ", ".join(parent.get("properties", {})) or "none"
        return f"- {where}: unknown field (allowed: {allowed})"
    return f"- {where}: {message} (got {_show(given)})"


def _input_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# --- the decorator --------------------------------------------------------------------


@overload
def tool(func: Callable[P, R], /) -> Tool[P, R]: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    timeout: float | None = None,
    max_retries: int = 2,
    needs_approval: ApprovalRule = False,
    external: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...
def tool(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    timeout: float | None = None,
    max_retries: int = 2,
    needs_approval: ApprovalRule = False,
    external: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function (sync or async, plain or method) into a :class:`Tool`.

    Use bare (``@tool``) or with options (``@tool(name=..., strict=False, timeout=5)``).

    Args:
        func: The function; omitted when options are given.
        name: Tool name (default: the function's name).
        description: Tool description (default: the docstring's summary and body).
        strict: True to require OpenAI strict mode, False to never use it, None (default)
            for strict whenever the signature allows it.
        timeout: Seconds after which a call is cancelled and reported as a timeout.
        max_retries: Consecutive failures the run loop tolerates before giving up.
        needs_approval: True, or a predicate ``(ctx, arguments) -> bool``: calls wait for
            a person's approval (``agent.resume(..., approve=[...])``).
        external: Schema only: the caller runs the tool and submits its output
            (``agent.resume(..., outputs={...})``).

    Raises:
        ToolDefinitionError: The function cannot become a tool; the message names the
            function, the parameter and the fix.
    """

    def decorate(function: Callable[P, R]) -> Tool[P, R]:
        bind_owner = isinstance(function, classmethod)
        if isinstance(function, staticmethod | classmethod):
            function = function.__func__
        if not callable(function):
            raise ToolDefinitionError(
                f"@tool needs a function, got {type(function).__name__}. Fix: decorate a "
                "def or async def."
            )
        tool_name = name if name is not None else getattr(function, "__name__", "")
        _check_name(tool_name, function)
        # A function defined in a class body: its first parameter may be self/cls.
        parts = getattr(function, "__qualname__", "").split(".")
        in_class = bind_owner or (len(parts) > 1 and parts[-2] != "<locals>")
        signature, doc = _function_signature(function, tool_name, in_class, bind_owner)
        made: Tool[P, R] = Tool(
            tool_name, doc if description is None else description, signature.parameters,
            function, strict=strict, timeout=timeout, max_retries=max_retries,
            needs_approval=needs_approval, external=external, _signature=signature,
        )  # fmt: skip
        functools.update_wrapper(made, function)
        return made

    return decorate if func is None else decorate(func)
