"""TestModel and its schema-driven value generator."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
import pydantic
import pytest

from agentkit import Agent, tool
from agentkit.errors import ConfigurationError
from agentkit.models.base import ModelResponse, TextDelta
from agentkit.testing._values import generate_value
from agentkit.testing.test_model import TestModel

SEEDS = range(40)

SCHEMAS: dict[str, dict[str, Any]] = {
    "enum": {"enum": ["red", "green", 3]},
    "const": {"const": {"a": 1}},
    "nullable type list": {"type": ["integer", "null"], "minimum": 5, "maximum": 5},
    "anyOf": {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "boolean"}]},
    "oneOf": {"oneOf": [{"type": "integer", "maximum": -1}, {"type": "string", "minLength": 3}]},
    "allOf": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string"}}, "required": ["b"]},
        ]
    },
    "array bounds": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
    "array exactly zero": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    "unique items": {
        "type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True
    },
    "prefixItems": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
        "minItems": 2,
    },
    "string lengths": {"type": "string", "minLength": 11, "maxLength": 12},
    "pattern": {"type": "string", "pattern": r"^[A-Z]{3}-\d{2,4}(x|yz)?$"},
    "pattern unanchored": {"type": "string", "pattern": r"ab+c"},
    "pattern class escapes": {"type": "string", "pattern": r"^\w+@[a-z0-9.-]+\.(com|org)$"},
    "int exclusive": {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 5},
    "int draft4 exclusive": {
        "type": "integer", "minimum": 1, "maximum": 3,
        "exclusiveMinimum": True, "exclusiveMaximum": True,
    },
    "int multipleOf": {"type": "integer", "minimum": 10, "maximum": 40, "multipleOf": 7},
    "number exclusive": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
    "number multipleOf": {"type": "number", "minimum": 0.1, "maximum": 1, "multipleOf": 0.25},
    "number only max": {"type": "number", "maximum": -1000},
    "recursive $defs": {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["name", "children", "parent"],
                "additionalProperties": False,
            }
        },
    },
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_generated_values_are_valid(name: str) -> None:
    schema = SCHEMAS[name]
    validator = jsonschema.Draft4Validator if "draft4" in name else jsonschema.Draft202012Validator
    for seed in SEEDS:
        validator(schema).validate(generate_value(schema, seed))


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("date-time", lambda v: dt.datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo),
        ("date", dt.date.fromisoformat),
        ("time", dt.time.fromisoformat),
        ("uuid", lambda v: uuid.UUID(v).version == 4),
        ("email", lambda v: re.fullmatch(r"[a-z]+@example\.com", v)),
        ("uri", lambda v: v.startswith("https://example.com/")),
        ("ipv4", lambda v: all(0 <= int(p) <= 255 for p in v.split("."))),
    ],
)
def test_string_formats(fmt: str, check: Any) -> None:
    for seed in range(10):
        assert check(generate_value({"type": "string", "format": fmt}, seed)), fmt


def test_values_are_deterministic_per_seed_and_vary_across_seeds() -> None:
    schema = SCHEMAS["recursive $defs"]
    assert generate_value(schema, 7) == generate_value(schema, 7)
    values = {json.dumps(generate_value({"type": "integer"}, seed)) for seed in SEEDS}
    assert len(values) > 10


def test_enum_values_are_all_reachable() -> None:
    assert {generate_value({"enum": ["a", "b", "c"]}, s) for s in SEEDS} == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": r"(?=x)x"}, "lookaround"),
        ({"$ref": "#/$defs/Missing"}, "does not resolve"),
        ({"type": "integer", "minimum": 3, "maximum": 2}, "no integer"),
    ],
)
def test_impossible_schemas_raise_readable_errors(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        generate_value(schema)


# --- TestModel with real agents --------------------------------------------------------

calls_seen: list[tuple[str, dict[str, Any]]] = []


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Get the weather.

    Args:
        city: City name.
        unit: Temperature unit.
    """
    calls_seen.append(("get_weather", {"city": city, "unit": unit}))
    return {"city": city, "temp": 14}


class Booking(pydantic.BaseModel):
    when: dt.date
    guests: int = pydantic.Field(ge=1, le=8)
    note: str | None = None


@tool
def book(booking: Booking, tags: list[str]) -> str:
    """Book a table."""
    calls_seen.append(("book", {"booking": booking, "tags": tags}))
    return "booked"


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls_seen.clear()


def test_calls_every_tool_with_valid_arguments_then_summarises() -> None:
    model = TestModel()
    agent = Agent(model=model, tools=[get_weather, book])
    result = agent.run_sync("go")
    seen = dict(calls_seen)  # the two calls run concurrently, in either order
    assert sorted(seen) == ["book", "get_weather"]
    assert all(not m.is_error for m in result.new_messages if m.role == "tool")
    assert isinstance(seen["book"]["booking"], Booking)
    assert 1 <= seen["book"]["booking"].guests <= 8
    assert seen["get_weather"]["unit"] in ("c", "f")
    assert json.loads(result.output) == {"get_weather": {"city": ANY_STR, "temp": 14},
                                         "book": "booked"}
    assert len(model.requests) == 2
    assert [t.name for t in model.requests[0].tools] == ["get_weather", "book"]
    assert result.usage.requests == 2 and result.usage.total_tokens > 0


class _AnyStr:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)


ANY_STR: Any = _AnyStr()


def test_call_tools_subset_and_explicit_text_output() -> None:
    agent = Agent(model=TestModel(call_tools=["book"], output="All done."),
                  tools=[get_weather, book])
    result = agent.run_sync("go")
    assert [name for name, _ in calls_seen] == ["book"]
    assert result.output == "All done."


def test_no_tools_called_when_call_tools_is_empty() -> None:
    result = Agent(model=TestModel(call_tools=[]), tools=[get_weather]).run_sync("hi")
    assert calls_seen == []
    assert result.output == "success (no tool calls)"


def test_unknown_tool_name_is_a_configuration_error() -> None:
    agent = Agent(model=TestModel(call_tools=["nope"]), tools=[get_weather])
    with pytest.raises(ConfigurationError, match=r"'nope'.*get_weather"):
        agent.run_sync("go")


def test_same_seed_same_arguments_other_seed_other_arguments() -> None:
    def arguments(seed: int) -> list[str]:
        model = TestModel(seed=seed)
        Agent(model=model, tools=[book]).run_sync("go")
        return [c.arguments for m in model.requests[1].messages for c in m.tool_calls]

    assert arguments(1) == arguments(1) != []
    assert arguments(1) != arguments(2)


@pytest.mark.parametrize("supports_json_schema", [True, False])
def test_structured_output_is_a_generated_valid_instance(supports_json_schema: bool) -> None:
    model = TestModel(call_tools=[], supports_json_schema=supports_json_schema)
    result = Agent(model=model, output_type=Booking).run_sync("book")
    assert isinstance(result.output, Booking)
    assert 1 <= result.output.guests <= 8
    if supports_json_schema:
        assert model.requests[0].response_format is not None
    else:
        assert [t.name for t in model.requests[0].tools] == ["final_result"]


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("output_type", "output"),
    [(Point, Point(1, 2)), (list[int], [1, 2, 3]), (Booking, {"when": "2024-05-01", "guests": 2})],
)
@pytest.mark.parametrize("supports_json_schema", [True, False])
def test_structured_output_given_explicitly(
    output_type: Any, output: Any, supports_json_schema: bool
) -> None:
    model = TestModel(output=output, supports_json_schema=supports_json_schema)
    result = Agent(model=model, output_type=output_type).run_sync("x")
    expected = pydantic.TypeAdapter(output_type).validate_python(output)
    assert result.output == expected


def test_tools_then_structured_output() -> None:
    result = Agent(model=TestModel(), tools=[get_weather], output_type=Point).run_sync("x")
    assert [n for n, _ in calls_seen] == ["get_weather"]
    assert isinstance(result.output, Point)


@pytest.mark.anyio
async def test_streams_text_in_pieces() -> None:
    agent = Agent(model=TestModel(output="one two three"))
    deltas = [e.text async for e in agent.stream("x") if isinstance(e, TextDelta)]
    assert deltas == ["one", " two", " three"]


@pytest.mark.anyio
async def test_request_records_and_returns_model_response() -> None:
    model = TestModel(output="hi")
    from agentkit.messages import Message
    from agentkit.models.base import ModelRequest

    response = await model.request(ModelRequest(messages=[Message.user("hello")]))
    assert isinstance(response, ModelResponse)
    assert response.message.text == "hi" and response.finish_reason == "stop"
    assert len(model.requests) == 1


def test_is_not_collected_by_pytest_and_is_a_test_double() -> None:
    assert TestModel.__test__ is False
    assert TestModel.is_test_double is True
