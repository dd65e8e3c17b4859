"""Tools: a Python function becomes a JSON-schema tool definition and a validated call.

``@tool`` reads the signature, type hints and docstring once, at decoration, and builds
the tool's JSON schema (strict form when possible). ``Tool.invoke`` turns a model's
arguments into a call: parse, validate with pydantic, run (sync functions in a worker
thread), and render the result as text. Bad arguments, exceptions and timeouts come back
as error :class:`ToolResult` values the model can read and correct; they never raise.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
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
    from agentkit.models.base import ToolDefinition

__all__ = ["RunContext", "Tool", "ToolResult", "tool"]

logger = logging.getLogger("agentkit")

P = ParamSpec("P")
R = TypeVar("R")
DepsT = TypeVar("DepsT")


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
    """

    deps: DepsT
    usage: Usage = field(default_factory=Usage)
    messages: list[Message] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None
    turn: int = 0


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


# --- building -----------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MISSING: Any = object()
_Binder = Callable[[dict[str, Any]], "tuple[tuple[Any, ...], dict[str, Any]]"]


class _BadArguments(Exception):
    """Validation problems found while binding arguments: ``(location, message, input)``."""

    def __init__(self, problems: list[tuple[tuple[Any, ...], str, Any]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ToolDefinitionError(
            f"Tool name {name!r} is invalid: names must be 1-64 characters of letters, "
            "digits, '_' or '-'. Fix: pass name='...' to @tool or Tool()."
        )


def _is_run_context(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation is RunContext or typing.get_origin(annotation) is RunContext


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)


def _type_hints(function: Callable[..., Any], where: str) -> dict[str, Any]:
    target = (
        function
        if inspect.isfunction(function) or inspect.ismethod(function)
        else (
            getattr(function, "__call__", function)  # noqa: B004
        )
    )
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


def _find_context_param(function: Callable[..., Any], where: str) -> str | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    hints = _type_hints(function, where)
    names = [n for n in signature.parameters if n in hints and _is_run_context(hints[n])]
    return names[0] if names else None


def _jsonable(value: Any) -> Any:
    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError:
        return _MISSING


def _qualname(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"function '{module}.{name}'" if module else f"function '{name}'"


def _defined_in_class(function: Callable[..., Any]) -> bool:
    parts = getattr(function, "__qualname__", "").split(".")
    return len(parts) > 1 and parts[-2] != "<locals>"


@dataclass(slots=True)
class _Analysis:
    """Everything @tool learns from a function, once."""

    parameters: dict[str, Any]
    description: str
    annotations: dict[str, Any]  # parameter → annotation, for the validator
    required: set[str]
    field_defaults: dict[str, Any]  # defaults given only through Field(default=...)
    positional_only: list[str]
    context_param: str | None
    self_param: str | None
    positional_defaults: dict[str, Any] = field(default_factory=dict)


def _analyse(function: Callable[..., Any], description: str | None, bound: bool) -> _Analysis:
    where = _qualname(function)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"Cannot make a tool from {where}: its signature cannot be read ({exc}). "
            "Fix: wrap it in a plain Python function with annotated parameters."
        ) from None
    hints = _type_hints(function, where)
    doc = parse_docstring(getattr(function, "__doc__", None))
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    analysis = _Analysis(
        {}, doc.description if description is None else description, {}, set(), {}, [], None, None
    )
    for index, param in enumerate(signature.parameters.values()):
        if index == 0 and bound and param.name in ("self", "cls"):
            analysis.self_param = param.name
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
            if analysis.context_param is not None:
                raise ToolDefinitionError(
                    f"Cannot make a tool from {where}: parameters "
                    f"'{analysis.context_param}' and '{param.name}' are both RunContext. "
                    "Fix: keep one RunContext parameter."
                )
            analysis.context_param = param.name
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
            default = _field_default(annotation)
            if default is not _MISSING:
                analysis.field_defaults[param.name] = default
        if default is param.empty or default is _MISSING:
            analysis.required.add(param.name)
        else:
            jsonable = _jsonable(default)
            if jsonable is not _MISSING:
                prop["default"] = jsonable
        if param.kind is param.POSITIONAL_ONLY:
            analysis.positional_only.append(param.name)
            if param.name not in analysis.required:
                analysis.positional_defaults[param.name] = default
        properties[param.name] = prop
        analysis.annotations[param.name] = annotation
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [n for n in properties if n in analysis.required],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    analysis.parameters = schema
    return analysis


def _field_default(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        for item in typing.get_args(annotation)[1:]:
            if isinstance(item, FieldInfo) and not item.is_required():
                return item.get_default(call_default_factory=True)
    return _MISSING


def _signature_binder(analysis: _Analysis, name: str) -> _Binder:
    """Validate with a TypedDict built from the annotations; the pydantic validator is
    compiled on first use (building it costs more than the whole decoration budget)."""
    adapter: list[pydantic.TypeAdapter[Any]] = []
    positional = analysis.positional_only
    field_defaults = analysis.field_defaults

    def build() -> pydantic.TypeAdapter[Any]:
        fields = {
            n: (
                a
                if n in analysis.required and n not in field_defaults
                else typing_extensions.NotRequired[a]
            )
            for n, a in analysis.annotations.items()
        }
        arguments = typing_extensions.TypedDict(f"{name}_arguments", fields)  # type: ignore[misc]
        arguments.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        return pydantic.TypeAdapter(arguments)

    def bind(data: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not adapter:
            adapter.append(build())
        try:
            values: dict[str, Any] = adapter[0].validate_python(data)
        except pydantic.ValidationError as exc:
            raise _BadArguments(
                [(e["loc"], e["msg"], e.get("input")) for e in exc.errors(include_url=False)]
            ) from None
        for key, default in field_defaults.items():
            values.setdefault(key, default)
        if positional:
            # A positional-only argument the model left out takes its default, so the
            # ones after it do not shift into its place.
            args = [
                values.pop(n) if n in values else analysis.positional_defaults[n]
                for n in positional
            ]
            return tuple(args), values
        return (), values

    return bind


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
        takes_context: Whether the function receives a :class:`RunContext`.
        function: The original function.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool
    timeout: float | None
    max_retries: int
    takes_context: bool
    function: Callable[..., Any]

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
    ) -> None:
        if parameters.get("type") != "object":
            raise ToolDefinitionError(
                f"Tool {name!r}: parameters must be a JSON schema of type 'object', got "
                f"{json.dumps(parameters)[:80]}. Fix: wrap them as "
                '{"type": "object", "properties": {...}}.'
            )
        original = copy.deepcopy(parameters)

        def bind(data: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            problems = _schema.instance_errors(original, data)
            if problems:
                raise _BadArguments([(loc, msg, _input_at(data, loc)) for loc, msg in problems])
            return (), data

        context = _find_context_param(function, _qualname(function))
        self._setup(
            name, description, original, function, strict, timeout, max_retries, bind, context
        )

    def _setup(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        function: Callable[..., Any],
        strict: bool | None,
        timeout: float | None,
        max_retries: int,
        binder: _Binder,
        context_param: str | None,
    ) -> None:
        _check_name(name)
        if timeout is not None and timeout <= 0:
            raise ToolDefinitionError(f"Tool {name!r}: timeout must be > 0, got {timeout!r}.")
        if max_retries < 0:
            raise ToolDefinitionError(
                f"Tool {name!r}: max_retries must be >= 0, got {max_retries!r}."
            )
        self.name = name
        self.description = description
        self.function = function
        self.timeout = timeout
        self.max_retries = max_retries
        self.takes_context = context_param is not None
        self._context_param = context_param
        self._binder = binder
        # Optional parameters whose type rejects null: a null from the model means "use
        # the default" (strict mode makes them nullable; some models send null anyway).
        required = set(parameters.get("required", ()))
        self._null_top = frozenset(
            n
            for n, p in parameters.get("properties", {}).items()
            if n not in required and isinstance(p, dict) and not _schema.allows_null(p)
        )
        self._null_nested: _schema.StrictSchema | None = None
        self._is_async = _is_async(function)
        self._needs_instance: str | None = None
        self._bind_owner = False
        self._definition: ToolDefinition | None = None
        strict_schema: _schema.StrictSchema | None = None
        reason = ""
        if strict is not False:
            try:
                strict_schema = _schema.to_strict(parameters)
            except _schema.NotStrictError as exc:
                reason = str(exc)
        if strict and strict_schema is None:
            raise ToolDefinitionError(
                f"Tool {name!r} cannot use strict mode: {reason}. Fix: change that "
                "parameter's type, or pass strict=None (strict when possible) or False."
            )
        self.strict = strict_schema is not None
        if strict_schema is not None:
            self.parameters = strict_schema.schema
            nested = {
                k: v
                for k, v in strict_schema.null_means_default.items()
                if k != id(strict_schema.schema)
            }
            if nested:
                # Only pay for the walk when a nested object has optional fields.
                self._null_nested = _schema.StrictSchema(strict_schema.schema, nested)
        else:
            self.parameters = parameters

    @classmethod
    def _from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None,
        description: str | None,
        strict: bool | None,
        timeout: float | None,
        max_retries: int,
    ) -> Tool[Any, Any]:
        bind_owner = False
        if isinstance(function, staticmethod):
            function = function.__func__
        elif isinstance(function, classmethod):
            function = function.__func__
            bind_owner = True
        if not callable(function):
            raise ToolDefinitionError(
                f"@tool needs a function, got {type(function).__name__}. Fix: decorate a "
                "def or async def."
            )
        tool_name = name if name is not None else getattr(function, "__name__", "")
        if not tool_name or not _NAME.match(tool_name):
            raise ToolDefinitionError(
                f"Cannot make a tool from {_qualname(function)}: its name {tool_name!r} is "
                "not a valid tool name (1-64 letters, digits, '_' or '-'). Fix: pass "
                "@tool(name='...')."
            )
        analysis = _analyse(function, description, bind_owner or _defined_in_class(function))
        self = cls.__new__(cls)
        self._setup(
            tool_name,
            analysis.description,
            analysis.parameters,
            function,
            strict,
            timeout,
            max_retries,
            _signature_binder(analysis, tool_name),
            analysis.context_param,
        )
        self._needs_instance = analysis.self_param
        self._bind_owner = bind_owner
        functools.update_wrapper(self, function)
        return self

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
        if model.model_config.get("extra") != "allow":
            schema["additionalProperties"] = False

        def validate(data: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            try:
                return (model.model_validate(data),), {}
            except pydantic.ValidationError as exc:
                raise _BadArguments(
                    [(e["loc"], e["msg"], e.get("input")) for e in exc.errors(include_url=False)]
                ) from None

        bind: _Binder = validate
        if model.model_config.get("extra") != "allow":
            bind = _forbid_unknown(validate, set(schema.get("properties", {})))
        self = cls.__new__(cls)
        self._setup(
            name or str(getattr(function, "__name__", model.__name__)),
            description,
            schema,
            function,
            strict,
            timeout,
            max_retries,
            bind,
            _find_context_param(function, _qualname(function)),
        )
        return self

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
        target = owner if self._bind_owner else instance
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
        """The :class:`~agentkit.models.ToolDefinition` sent to models (built once)."""
        if self._definition is None:
            # Imported here: models sit above tools in the layering.
            from agentkit.models.base import ToolDefinition

            self._definition = ToolDefinition(
                self.name, self.description, self.parameters, self.strict
            )
        return self._definition

    def to_openai(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry: ``{"type": "function", "function": ...}``."""
        return self.definition.to_openai()

    # --- invocation ---

    async def invoke(
        self, arguments: str | Mapping[str, Any] | None, context: RunContext[Any] | None = None
    ) -> ToolResult:
        """Validate ``arguments`` (JSON text or a mapping; ``""``/None mean ``{}``), call
        the function and return its result as text.

        Never raises for bad arguments, an exception in the function or a timeout: those
        come back as ``ToolResult(is_error=True)`` with a message the model can act on.
        Cancellation of the surrounding task propagates.
        """
        if self._needs_instance is not None:
            raise ToolDefinitionError(
                f"Tool {self.name!r} is a method: invoke it through an instance "
                f"(obj.{self.name}) so that '{self._needs_instance}' is bound."
            )
        try:
            args, kwargs = self._bind_arguments(arguments)
        except ToolArgumentsError as error:
            return ToolResult(content=str(error), is_error=True, error=error)
        if self._context_param is not None:
            kwargs[self._context_param] = context if context is not None else RunContext(None)
        try:
            if self.timeout is None:
                value = await self._run(args, kwargs)
            else:
                with anyio.move_on_after(self.timeout) as scope:
                    value = await self._run(args, kwargs)
                if scope.cancelled_caught:
                    message = (
                        f"Tool '{self.name}' did not finish within {self.timeout:g} seconds "
                        "and was cancelled."
                    )
                    return ToolResult(
                        content=message,
                        is_error=True,
                        error=ToolTimeout(message, tool_name=self.name, timeout=self.timeout),
                    )
            content = _to_text(value)
        except Exception as exc:
            return self._failure(exc)
        return ToolResult(content=content, value=value)

    async def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._is_async:
            return await self.function(*args, **kwargs)
        call = functools.partial(self.function, *args, **kwargs)
        # Abandon the worker thread on timeout so the loop is not held hostage; the
        # thread finishes in the background.
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=self.timeout is not None)

    def _failure(self, exc: Exception) -> ToolResult:
        text = str(exc)
        kind = type(exc).__name__
        message = (
            f"Tool '{self.name}' raised {kind}: {text}"
            if text
            else (f"Tool '{self.name}' raised {kind}")
        )
        logger.debug("tool %s raised %s", self.name, kind)
        error = ToolError(message, tool_name=self.name, exception=exc)
        error.__cause__ = exc
        return ToolResult(content=message, is_error=True, error=error)

    def _bind_arguments(
        self, arguments: str | Mapping[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        data: Any
        if arguments is None:
            data = {}
        elif isinstance(arguments, str):
            if not arguments.strip():
                data = {}
            else:
                try:
                    data = json.loads(arguments)
                except json.JSONDecodeError as exc:
                    raise self._arguments_error(
                        f"the arguments are not valid JSON ({exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}). Send a single JSON object."
                    ) from None
        elif isinstance(arguments, Mapping):
            data = dict(arguments)
        else:
            data = arguments
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
            return self._binder(data)
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
                f"validating them raised {type(exc).__name__}: {exc}. Fix the arguments "
                f"and call '{self.name}' again."
            ) from exc

    def _arguments_error(self, detail: str, *, multiline: bool = False) -> ToolArgumentsError:
        separator = ":\n" if multiline else ": "
        return ToolArgumentsError(
            f"Invalid arguments for tool '{self.name}'{separator}{detail}", tool_name=self.name
        )


def _forbid_unknown(bind: _Binder, known: set[str]) -> _Binder:
    def checked(data: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        unknown = [k for k in data if k not in known]
        try:
            result = bind(data)
        except _BadArguments as bad:
            bad.problems.extend(((k,), "Extra inputs are not permitted", data[k]) for k in unknown)
            raise
        if unknown:
            raise _BadArguments(
                [((k,), "Extra inputs are not permitted", data[k]) for k in unknown]
            )
        return result

    return checked


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


# --- messages for the model -----------------------------------------------------------


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return pydantic_core.to_json(value, serialize_unknown=True).decode()


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


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
    if message == "Extra inputs are not permitted":
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

    Raises:
        ToolDefinitionError: The function cannot become a tool; the message names the
            function, the parameter and the fix.
    """

    def decorate(function: Callable[P, R]) -> Tool[P, R]:
        return Tool._from_function(
            function,
            name=name,
            description=description,
            strict=strict,
            timeout=timeout,
            max_retries=max_retries,
        )

    return decorate if func is None else decorate(func)
