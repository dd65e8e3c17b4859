"""@tool and Tool: naming, docstrings, methods, definitions and decoration-time errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from pydantic import Field
from typing_extensions import TypedDict

from agentkit.errors import ToolDefinitionError
from agentkit.models.base import ToolDefinition
from agentkit.tools import RunContext, Tool, tool

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str, unit: str = "c") -> str:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.

    Returns:
        A sentence.

    Raises:
        KeyError: Unknown city.
    """
    return f"{city}:{unit}"


def test_tool_is_still_the_function() -> None:
    assert get_weather("Paris") == "Paris:c"
    assert get_weather.__name__ == "get_weather"
    assert get_weather.__doc__ is not None
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Get the current weather for a city."
    assert get_weather.max_retries == 2
    assert get_weather.timeout is None
    assert get_weather.takes_context is False


def test_definition_and_openai_form() -> None:
    assert get_weather.definition is get_weather.definition
    assert get_weather.definition == ToolDefinition(
        "get_weather", get_weather.description, get_weather.parameters, True
    )
    assert get_weather.to_openai() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": get_weather.parameters,
            "strict": True,
        },
    }
    loose = tool(strict=False)(get_weather.function)
    assert "strict" not in loose.to_openai()["function"]


def test_options() -> None:
    @tool(name="weather-now", description="Custom.", timeout=3, max_retries=0)
    async def fn(city: str) -> str:
        return city

    assert (fn.name, fn.description, fn.timeout, fn.max_retries) == ("weather-now", "Custom.", 3, 0)


def _doc_tool(doc: str) -> Tool[..., Any]:
    def fn(a: int, b: str, c: float = 1.0) -> None:
        pass

    fn.__doc__ = doc
    return tool(fn)


def _descriptions(t: Tool[..., Any]) -> dict[str, str]:
    props = tool(strict=False)(t.function).parameters["properties"]
    return {name: prop.get("description", "") for name, prop in props.items()}


DOCSTRINGS = {
    "google": """Summary line.

        Longer text
        over two lines.

        Args:
            a: The a.
            b (str): The b,
                continued.

        Keyword Args:
            c: The c.

        Returns:
            Nothing.
        """,
    "google_keyword_arguments": """Summary line.

        Longer text
        over two lines.

        Arguments:
            a: The a.
            b: The b, continued.

        Keyword Arguments:
            c: The c.
        """,
    "google_other_parameters": """Summary line.

        Longer text
        over two lines.

        Args:
            a: The a.

        Other Parameters:
            b: The b, continued.
            c: The c.

        Raises:
            ValueError: never.
        """,
    "numpy": """Summary line.

        Longer text
        over two lines.

        Parameters
        ----------
        a : int
            The a.
        b : str
            The b, continued.

        Other Parameters
        ----------------
        c : float
            The c.

        Returns
        -------
        None
        """,
    "rest": """Summary line.

        Longer text
        over two lines.

        :param a: The a.
        :param b: The b, continued.
        :param c: The c.
        :returns: nothing
        :raises ValueError: never
        """,
    "epydoc": """Summary line.

        Longer text
        over two lines.

        @param a: The a.
        @param b: The b, continued.
        @param c: The c.
        @return: nothing
        """,
}


@pytest.mark.parametrize("style", list(DOCSTRINGS))
def test_docstring_styles(style: str) -> None:
    t = _doc_tool(DOCSTRINGS[style])
    assert t.description == "Summary line.\n\nLonger text\nover two lines."
    assert _descriptions(t) == {"a": "The a.", "b": "The b, continued.", "c": "The c."}


def test_plain_docstring_is_all_description() -> None:
    assert _doc_tool("Just prose.\n\nMore.").description == "Just prose.\n\nMore."
    assert _doc_tool("").description == ""


def test_description_precedence_field_then_annotated_text_then_docstring() -> None:
    def fn(
        a: Annotated[int, "text a", Field(description="field a")],
        b: Annotated[int, "text b"],
        c: int,
    ) -> None:
        """Do.

        Args:
            a: doc a
            b: doc b
            c: doc c
        """

    assert _descriptions(tool(fn)) == {"a": "field a", "b": "text b", "c": "doc c"}


def test_forward_references_and_local_classes() -> None:
    from pydantic import BaseModel

    class Local(BaseModel):
        v: int

    def uses_local(item: Local, later: Later) -> None:
        pass

    t = tool(uses_local)
    assert t.parameters["properties"]["item"] == {"$ref": "#/$defs/Local"}
    assert t.parameters["properties"]["later"] == {"$ref": "#/$defs/Later"}


class Later(TypedDict):
    n: int


class Counter:
    """A class with tool methods."""

    def __init__(self) -> None:
        self.total = 0

    @tool
    def add(self, n: int) -> int:
        """Add n."""
        self.total += n
        return self.total

    @tool
    @classmethod
    def kind(cls, suffix: str) -> str:
        return cls.__name__ + suffix

    @tool
    @staticmethod
    def double(n: int) -> int:
        return 2 * n


async def test_methods_bind_and_hide_self() -> None:
    counter = Counter()
    assert list(Counter.add.parameters["properties"]) == ["n"]
    bound = counter.add
    assert isinstance(bound, Tool)
    assert bound.parameters is Counter.add.parameters
    assert bound(2) == 2
    assert (await counter.add.invoke('{"n": 3}')).content == "5"
    assert counter.total == 5
    assert (await Counter.kind.invoke('{"suffix": "!"}')).content == "Counter!"
    assert (await counter.double.invoke('{"n": 4}')).content == "8"
    with pytest.raises(ToolDefinitionError, match="is a method: invoke it through an instance"):
        await Counter.add.invoke('{"n": 1}')


def _fn_star(*items: str) -> None: ...
def _fn_kw(**options: int) -> None: ...
def _fn_plain(x) -> None: ...  # type: ignore[no-untyped-def]
def _fn_object(x: object) -> None: ...
def _fn_callable(cb: Callable[[int], int]) -> None: ...
def _fn_dict_keys(m: dict[float, int]) -> None: ...
def _fn_two_ctx(a: RunContext[None], b: RunContext[None]) -> None: ...
def _fn_bad_literal(x: Any) -> None: ...


_fn_bad_literal.__annotations__["x"] = __import__("typing").Literal[b"x"]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_fn_star, "Cannot make a tool from function 'test_tools._fn_star': parameter '*items' "
         "takes a variable number of arguments, which a JSON schema cannot describe. Fix: "
         "declare each parameter explicitly, or take one list/dict parameter."),
        (_fn_kw, "Cannot make a tool from function 'test_tools._fn_kw': parameter '**options' "
         "takes a variable number of arguments, which a JSON schema cannot describe. Fix: "
         "declare each parameter explicitly, or take one list/dict parameter."),
        (_fn_plain, "Cannot make a tool from function 'test_tools._fn_plain': parameter 'x' "
         "has no type annotation. Fix: annotate it, e.g. `x: str`."),
        (_fn_object, "Cannot make a tool from function 'test_tools._fn_object': parameter 'x' "
         "is a bare `object`, which says nothing about the value. Fix: use a concrete type, "
         "or typing.Any if any JSON value is acceptable."),
        (_fn_callable, "Cannot make a tool from function 'test_tools._fn_callable': parameter "
         "'cb' is collections.abc.Callable[[int], int], which cannot be sent as JSON. Fix: use "
         "a JSON-compatible type: str, int, float, bool, a Literal, an Enum, list[T], "
         "dict[str, T], a pydantic model, a dataclass or a TypedDict."),
        (_fn_dict_keys, "Cannot make a tool from function 'test_tools._fn_dict_keys': parameter "
         "'m' has keys of type float; JSON object keys are strings. Fix: use dict[str, T]."),
        (_fn_two_ctx, "Cannot make a tool from function 'test_tools._fn_two_ctx': parameters "
         "'a' and 'b' are both RunContext. Fix: keep one RunContext parameter."),
        (_fn_bad_literal, "Cannot make a tool from function 'test_tools._fn_bad_literal': "
         "parameter 'x' has the value b'x', which is not a JSON scalar. Fix: use str, int, "
         "float, bool or None values in Literal/Enum."),
    ],
)
def test_unsupported_signatures_fail_at_decoration(function: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(function)
    assert str(info.value) == message


def test_strict_true_raises_when_impossible() -> None:
    def fn(options: dict[str, int]) -> None: ...

    with pytest.raises(ToolDefinitionError) as info:
        tool(strict=True)(fn)
    assert str(info.value) == (
        "Tool 'fn' cannot use strict mode: options is an object with free-form keys (like "
        "dict[str, T]); strict mode needs fixed properties. Fix: change that parameter's "
        "type, or pass strict=None (strict when possible) or False."
    )
    assert tool(fn).strict is False


def test_invalid_names_and_options() -> None:
    with pytest.raises(ToolDefinitionError, match=re.escape("its name '<lambda>' is not a valid")):
        tool(lambda: None)
    assert tool(name="ok")(lambda: None).name == "ok"
    with pytest.raises(ToolDefinitionError, match="timeout must be > 0"):
        tool(timeout=0)(get_weather.function)
    with pytest.raises(ToolDefinitionError, match="parameters must be a JSON schema of type"):
        Tool("t", "", {"type": "array"}, print)


def test_unresolvable_annotation_is_explained() -> None:
    def fn(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match="the annotation 'Missing' cannot be resolved"):
        tool(fn)
