"""Tool.invoke: argument parsing and validation (exact texts the model reads), running
sync and async functions, timeouts, exceptions, context injection, result rendering."""

from __future__ import annotations

import dataclasses
import datetime
import threading
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import AfterValidator, BaseModel, Field

from agentkit.errors import ToolArgumentsError, ToolError, ToolTimeout
from agentkit.tools import RunContext, Tool, ToolResult, tool

pytestmark = pytest.mark.anyio


class Point(BaseModel):
    x: int
    y: int = 0


@tool
def forecast(
    city: str,
    days: Annotated[int, Field(ge=1)] = 1,
    unit: Literal["c", "f"] = "c",
    points: list[Point] | None = None,
) -> dict[str, Any]:
    """Forecast."""
    return {"city": city, "days": days, "unit": unit, "points": points}


FIX = "\nFix the arguments and call 'forecast' again."


@pytest.mark.parametrize(
    ("arguments", "content"),
    [
        ("{bad", "Invalid arguments for tool 'forecast': the arguments are not valid JSON "
         "(Expecting property name enclosed in double quotes at line 1 column 2). "
         "Send a single JSON object."),
        ('{"city": "Paris"', "Invalid arguments for tool 'forecast': the arguments are not "
         "valid JSON (Expecting ',' delimiter at line 1 column 17). Send a single JSON object."),
        ("[1, 2]", "Invalid arguments for tool 'forecast': the arguments must be a JSON object, "
         "got an array [1, 2]. Send a single JSON object with the parameters as keys."),
        ('"Paris"', "Invalid arguments for tool 'forecast': the arguments must be a JSON "
         'object, got a string "Paris". Send a single JSON object with the parameters as keys.'),
        ("null", "Invalid arguments for tool 'forecast': the arguments must be a JSON object, "
         "got null null. Send a single JSON object with the parameters as keys."),
        ("", "Invalid arguments for tool 'forecast':\n- city: missing required field "
         "(expected string)" + FIX),
        ('{"city": "Paris", "colour": "red"}', "Invalid arguments for tool 'forecast':\n"
         "- colour: unknown field (allowed: city, days, unit, points)" + FIX),
        ('{"city": 7}', "Invalid arguments for tool 'forecast':\n"
         "- city: Input should be a valid string (got 7)" + FIX),
        ('{"city": "P", "days": "two"}', "Invalid arguments for tool 'forecast':\n- days: "
         'Input should be a valid integer, unable to parse string as an integer (got "two")'
         + FIX),
        ('{"city": "P", "days": 0}', "Invalid arguments for tool 'forecast':\n"
         "- days: Input should be greater than or equal to 1 (got 0)" + FIX),
        ('{"city": "P", "unit": "k"}', "Invalid arguments for tool 'forecast':\n"
         "- unit: Input should be 'c' or 'f' (got \"k\")" + FIX),
        ('{"city": "P", "points": [{"y": 1}]}', "Invalid arguments for tool 'forecast':\n"
         "- points[0].x: missing required field (expected integer)" + FIX),
        ('{"days": 0, "extra": 1}', "Invalid arguments for tool 'forecast':\n"
         "- city: missing required field (expected string)\n"
         "- days: Input should be greater than or equal to 1 (got 0)\n"
         "- extra: unknown field (allowed: city, days, unit, points)" + FIX),
    ],
)
async def test_bad_arguments_give_exact_text(arguments: str, content: str) -> None:
    result = await forecast.invoke(arguments)
    assert result.is_error
    assert result.content == content
    assert isinstance(result.error, ToolArgumentsError)
    assert result.error.tool_name == "forecast"
    assert str(result.error) == content
    assert result.value is None


async def test_non_mapping_python_value_is_an_arguments_error() -> None:
    result = await forecast.invoke(42)  # type: ignore[arg-type]
    assert result.content.startswith(
        "Invalid arguments for tool 'forecast': the arguments must be a JSON object, got a "
        "number 42."
    )


async def test_valid_arguments_as_json_or_dict_and_null_means_default() -> None:
    expected = {"city": "Paris", "days": 1, "unit": "c", "points": None}
    for arguments in ('{"city": "Paris"}', {"city": "Paris"},
                      '{"city": "Paris", "days": null, "unit": null, "points": null}'):
        result = await forecast.invoke(arguments)
        assert result == ToolResult(
            content='{"city":"Paris","days":1,"unit":"c","points":null}', value=expected
        )


async def test_nested_null_means_default_in_strict_mode() -> None:
    result = await forecast.invoke({"city": "P", "points": [{"x": 1, "y": None}]})
    assert not result.is_error, result.content
    assert result.value["points"] == [Point(x=1, y=0)]


async def test_values_are_converted_to_annotated_types() -> None:
    @tool
    def convert(when: datetime.date, tags: set[str], pair: tuple[int, str]) -> str:
        return f"{when!r} {sorted(tags)} {pair!r}"

    result = await convert.invoke('{"when": "2024-05-01", "tags": ["b", "a", "b"], '
                                  '"pair": [1, "x"]}')
    assert result.content == "datetime.date(2024, 5, 1) ['a', 'b'] (1, 'x')"


async def test_return_values_become_text() -> None:
    @dataclasses.dataclass
    class Out:
        when: datetime.datetime
        n: int

    cases: list[tuple[Any, str]] = [
        ("plain text", "plain text"),
        (None, ""),
        (3, "3"),
        ({"a": [1, 2], "é": True}, '{"a":[1,2],"é":true}'),
        (Point(x=1), '{"x":1,"y":0}'),
        (Out(datetime.datetime(2024, 1, 2, 3, 4, 5), 2), '{"when":"2024-01-02T03:04:05","n":2}'),
    ]
    for value, text in cases:
        returns = Tool("returns", "", {"type": "object", "properties": {}},
                       lambda value=value: value)
        result = await returns.invoke(None)
        assert (result.content, result.value, result.is_error) == (text, value, False)


async def test_exception_becomes_tool_error_result() -> None:
    boom = ValueError("city not found: Atlantis")

    @tool
    def explode(city: str) -> str:
        raise boom

    result = await explode.invoke({"city": "Atlantis"})
    assert result.is_error
    assert result.content == "Tool 'explode' raised ValueError: city not found: Atlantis"
    assert isinstance(result.error, ToolError)
    assert result.error.exception is boom
    assert result.error.__cause__ is boom

    @tool
    async def silent() -> None:
        raise KeyError

    assert (await silent.invoke("")).content == "Tool 'silent' raised KeyError"


async def test_sync_functions_run_in_a_worker_thread_async_in_the_loop() -> None:
    loop_thread = threading.get_ident()

    @tool
    def sync_fn() -> int:
        return threading.get_ident()

    @tool
    async def async_fn() -> int:
        return threading.get_ident()

    assert (await sync_fn.invoke("")).value != loop_thread
    assert (await async_fn.invoke("")).value == loop_thread


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_timeout_cancels_and_reports(kind: str) -> None:
    release = threading.Event()

    def slow_sync() -> str:
        release.wait(5)
        return "late"

    async def slow_async() -> str:
        await anyio.sleep(5)
        return "late"

    slow = tool(slow_sync if kind == "sync" else slow_async, name="slow", timeout=0.05)
    with anyio.fail_after(2):
        result = await slow.invoke("{}")
    release.set()
    assert result.is_error
    assert result.content == "Tool 'slow' did not finish within 0.05 seconds and was cancelled."
    assert isinstance(result.error, ToolTimeout)
    assert result.error.timeout == 0.05


async def test_outer_cancellation_propagates() -> None:
    started = anyio.Event()

    @tool
    async def wait_forever() -> None:
        started.set()
        await anyio.sleep(10)

    outcome: list[ToolResult] = []
    with anyio.move_on_after(5) as outer:
        async with anyio.create_task_group() as group:

            async def run() -> None:
                outcome.append(await wait_forever.invoke(""))

            group.start_soon(run)
            await started.wait()
            group.cancel_scope.cancel()
    assert not outer.cancelled_caught
    assert outcome == []


async def test_run_context_is_injected_in_any_position() -> None:
    @tool
    def whoami(prefix: str, ctx: RunContext[dict[str, str]], suffix: str = "!") -> str:
        return prefix + ctx.deps["user"] + suffix

    assert whoami.takes_context
    assert list(whoami.parameters["properties"]) == ["prefix", "suffix"]
    ctx = RunContext({"user": "ada"})
    assert (await whoami.invoke({"prefix": "hi "}, ctx)).content == "hi ada!"

    @tool
    def deps(ctx: RunContext[None]) -> str:
        return repr(ctx.deps)

    assert (await deps.invoke(None)).content == "None"


async def test_positional_only_parameters() -> None:
    @tool
    def add(a: int, b: int, /, scale: int = 1) -> int:
        return (a + b) * scale

    assert (await add.invoke({"a": 1, "b": 2, "scale": 3})).value == 9


async def test_hand_built_tool_checks_arguments() -> None:
    seen: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> str:
        seen.append(kwargs)
        return "ok"

    hand = Tool(
        "record",
        "Record things.",
        {"type": "object", "properties": {"n": {"type": "integer"}, "tag": {"type": "string"}},
         "required": ["n"]},
        record,
    )
    assert hand.strict
    assert (await hand.invoke('{"n": 1, "tag": null}')).content == "ok"
    assert seen == [{"n": 1}]
    bad = await hand.invoke('{"n": "1", "other": 2}')
    assert bad.content == (
        "Invalid arguments for tool 'record':\n- n: Input should be of type integer (got \"1\")"
        "\nFix the arguments and call 'record' again."
    )


async def test_from_model_passes_the_validated_instance() -> None:
    class Query(BaseModel):
        """Search query."""

        text: str
        limit: int = 5

    def search(query: Query, ctx: RunContext[str]) -> str:
        return f"{ctx.deps}:{query.text}:{query.limit}"

    search_tool = Tool.from_model(Query, search)
    assert search_tool.name == "search"
    assert search_tool.description == "Search query."
    assert search_tool.strict
    result = await search_tool.invoke('{"text": "x", "limit": null}', RunContext("me"))
    assert result.content == "me:x:5"
    bad = await search_tool.invoke('{"text": "x", "page": 2}')
    assert bad.content == (
        "Invalid arguments for tool 'search':\n- page: unknown field (allowed: text, limit)"
        "\nFix the arguments and call 'search' again."
    )


async def test_positional_only_arguments_left_out_take_their_defaults_without_shifting() -> None:
    @tool
    def span(start: int = 1, stop: int = 2, /) -> str:
        """A span."""
        return f"{start}..{stop}"

    assert (await span.invoke('{"stop": 5}')).content == "1..5"
    assert (await span.invoke('{"start": 3}')).content == "3..2"


async def test_a_validator_raising_an_unexpected_error_becomes_an_arguments_error() -> None:
    def odd(value: int) -> int:
        if value % 2 == 0:
            raise TypeError("even numbers are not supported")
        return value

    @tool
    def take_odd(n: Annotated[int, AfterValidator(odd)]) -> int:
        """Take an odd number."""
        return n

    result = await take_odd.invoke('{"n": 4}')
    assert result.is_error and isinstance(result.error, ToolArgumentsError)
    assert result.content == (
        "Invalid arguments for tool 'take_odd': validating them raised TypeError: even "
        "numbers are not supported. Fix the arguments and call 'take_odd' again."
    )
    assert (await take_odd.invoke('{"n": 3}')).content == "3"
