"""Exact JSON schemas for a table of signatures, in non-strict and strict form, and the
strict-mode transform and checks of agentkit.schema."""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import pathlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NewType, Optional, Union

import pytest
from pydantic import BaseModel, Field
from typing_extensions import NotRequired, TypedDict

from agentkit import schema as s
from agentkit.tools import Tool, tool

NO_DEFAULT = inspect.Parameter.empty
S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
N = {"type": "number"}
B = {"type": "boolean"}
NULL = {"type": "null"}
DEC = {"anyOf": [N, {"type": "string", "pattern": s._DECIMAL_PATTERN}]}


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    """A point."""

    x: int
    y: int = 0


@dataclass
class Box:
    width: float
    label: str = "box"


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


UserId = NewType("UserId", int)


def one_param(annotation: Any, default: Any = NO_DEFAULT, **options: Any) -> Tool[..., Any]:
    """@tool over `def f(x: annotation = default)`, built without exec."""

    def f(**kwargs: Any) -> Any:
        return kwargs["x"]

    param = inspect.Parameter("x", inspect.Parameter.KEYWORD_ONLY, default=default)
    f.__signature__ = inspect.Signature([param])  # type: ignore[attr-defined]
    f.__annotations__ = {"x": annotation}
    return tool(f, **options)


def _nullable(prop: dict[str, Any], note: str) -> dict[str, Any]:
    branches = prop["anyOf"] if set(prop) == {"anyOf"} else [prop]
    return {"anyOf": [*branches, NULL], "description": note}


# (id, annotation, default, non-strict property, strict property or None = not strict,
#  $defs or None)
CASES: list[tuple[str, Any, Any, dict[str, Any], dict[str, Any] | None, Any]] = [
    ("str", str, NO_DEFAULT, S, S, None),
    ("int", int, NO_DEFAULT, I, I, None),
    ("float", float, NO_DEFAULT, N, N, None),
    ("bool", bool, NO_DEFAULT, B, B, None),
    ("none", None, NO_DEFAULT, NULL, NULL, None),
    ("optional", Optional[int], NO_DEFAULT, {"anyOf": [I, NULL]}, {"anyOf": [I, NULL]}, None),  # noqa: UP045
    ("pipe_none", str | None, None, {"anyOf": [S, NULL], "default": None},
     {"anyOf": [S, NULL]}, None),
    ("union", Union[int, str], NO_DEFAULT, {"anyOf": [I, S]}, {"anyOf": [I, S]}, None),  # noqa: UP007
    ("nested_union", int | (str | None), NO_DEFAULT, {"anyOf": [I, S, NULL]},
     {"anyOf": [I, S, NULL]}, None),
    ("literal_str", Literal["a", "b"], NO_DEFAULT, {"type": "string", "enum": ["a", "b"]},
     {"type": "string", "enum": ["a", "b"]}, None),
    ("literal_int", Literal[1, 2], NO_DEFAULT, {"type": "integer", "enum": [1, 2]},
     {"type": "integer", "enum": [1, 2]}, None),
    ("literal_mixed", Literal["a", 1], NO_DEFAULT, {"enum": ["a", 1]}, {"enum": ["a", 1]}, None),
    ("literal_none", Literal["a", None], NO_DEFAULT,
     {"anyOf": [{"type": "string", "enum": ["a"]}, NULL]},
     {"anyOf": [{"type": "string", "enum": ["a"]}, NULL]}, None),
    ("enum", Color, NO_DEFAULT, {"type": "string", "enum": ["red", "green"]},
     {"type": "string", "enum": ["red", "green"]}, None),
    ("int_enum", Level, NO_DEFAULT, {"type": "integer", "enum": [1, 2]},
     {"type": "integer", "enum": [1, 2]}, None),
    ("list", list[str], NO_DEFAULT, {"type": "array", "items": S},
     {"type": "array", "items": S}, None),
    ("sequence", Sequence[int], NO_DEFAULT, {"type": "array", "items": I},
     {"type": "array", "items": I}, None),
    ("list_of_lists", list[list[float]], NO_DEFAULT,
     {"type": "array", "items": {"type": "array", "items": N}},
     {"type": "array", "items": {"type": "array", "items": N}}, None),
    ("set", set[int], NO_DEFAULT, {"type": "array", "items": I, "uniqueItems": True},
     {"type": "array", "items": I, "description": "Items must be unique."}, None),
    ("frozenset", frozenset[str], NO_DEFAULT, {"type": "array", "items": S, "uniqueItems": True},
     {"type": "array", "items": S, "description": "Items must be unique."}, None),
    ("tuple_var", tuple[int, ...], NO_DEFAULT, {"type": "array", "items": I},
     {"type": "array", "items": I}, None),
    ("tuple_fixed", tuple[int, str], NO_DEFAULT,
     {"type": "array", "prefixItems": [I, S], "minItems": 2, "maxItems": 2}, None, None),
    ("dict", dict[str, int], NO_DEFAULT, {"type": "object", "additionalProperties": I},
     None, None),
    ("mapping", Mapping[str, list[str]], NO_DEFAULT,
     {"type": "object", "additionalProperties": {"type": "array", "items": S}}, None, None),
    ("any", Any, NO_DEFAULT, {}, None, None),
    ("datetime", datetime.datetime, NO_DEFAULT, {"type": "string", "format": "date-time"},
     {"type": "string", "format": "date-time"}, None),
    ("date", datetime.date, NO_DEFAULT, {"type": "string", "format": "date"},
     {"type": "string", "format": "date"}, None),
    ("time", datetime.time, NO_DEFAULT, {"type": "string", "format": "time"},
     {"type": "string", "format": "time"}, None),
    ("timedelta", datetime.timedelta, NO_DEFAULT, {"type": "string", "format": "duration"},
     {"type": "string", "format": "duration"}, None),
    ("uuid", uuid.UUID, NO_DEFAULT, {"type": "string", "format": "uuid"},
     {"type": "string", "format": "uuid"}, None),
    ("decimal", decimal.Decimal, NO_DEFAULT, DEC, DEC, None),
    ("path", pathlib.Path, NO_DEFAULT, {"type": "string", "format": "path"},
     {"type": "string", "description": "Format: path."}, None),
    ("newtype", UserId, NO_DEFAULT, I, I, None),
    ("default_int", int, 3, {"type": "integer", "default": 3},
     _nullable(I, "Null means the default (3)."), None),
    ("default_literal", Literal["c", "f"], "c",
     {"type": "string", "enum": ["c", "f"], "default": "c"},
     _nullable({"type": "string", "enum": ["c", "f"]}, 'Null means the default ("c").'), None),
    ("default_list", list[int], (), {"type": "array", "items": I, "default": []},
     _nullable({"type": "array", "items": I}, "Null means the default ([])."), None),
    ("default_enum", Color, Color.RED, {"type": "string", "enum": ["red", "green"],
                                        "default": "red"},
     _nullable({"type": "string", "enum": ["red", "green"]}, 'Null means the default ("red").'),
     None),
    ("default_unjsonable", int, object(), {"type": "integer"},
     _nullable(I, "Null means the default."), None),
    ("annotated_text", Annotated[str, "The name."], NO_DEFAULT,
     {"type": "string", "description": "The name."},
     {"type": "string", "description": "The name."}, None),
    ("field_constraints", Annotated[int, Field(ge=1, lt=10, multiple_of=2)], NO_DEFAULT,
     {"type": "integer", "minimum": 1, "exclusiveMaximum": 10, "multipleOf": 2},
     {"type": "integer", "minimum": 1, "exclusiveMaximum": 10, "multipleOf": 2}, None),
    ("field_float", Annotated[float, Field(gt=0, le=1.5)], NO_DEFAULT,
     {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5},
     {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5}, None),
    ("field_string", Annotated[str, Field(min_length=2, max_length=5, pattern="^[a-z]+$")],
     NO_DEFAULT, {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
     {"type": "string", "pattern": "^[a-z]+$",
      "description": "At least 2 characters. At most 5 characters."}, None),
    ("field_list", Annotated[list[int], Field(min_length=1, max_length=3)], NO_DEFAULT,
     {"type": "array", "items": I, "minItems": 1, "maxItems": 3},
     {"type": "array", "items": I, "minItems": 1, "maxItems": 3}, None),
    ("field_description_wins", Annotated[str, "text", Field(description="field")], NO_DEFAULT,
     {"type": "string", "description": "field"}, {"type": "string", "description": "field"},
     None),
    ("list_of_constrained", list[Annotated[int, Field(ge=0)]], NO_DEFAULT,
     {"type": "array", "items": {"type": "integer", "minimum": 0}},
     {"type": "array", "items": {"type": "integer", "minimum": 0}}, None),
    ("model", Point, NO_DEFAULT, {"$ref": "#/$defs/Point"}, {"$ref": "#/$defs/Point"},
     {"Point": {"type": "object", "description": "A point.",
                "properties": {"x": I, "y": {"type": "integer", "default": 0}},
                "required": ["x"]}}),
    ("optional_model", Point | None, None, {"anyOf": [{"$ref": "#/$defs/Point"}, NULL],
                                            "default": None},
     {"anyOf": [{"$ref": "#/$defs/Point"}, NULL]}, "Point"),
    ("list_of_models", list[Point], NO_DEFAULT,
     {"type": "array", "items": {"$ref": "#/$defs/Point"}},
     {"type": "array", "items": {"$ref": "#/$defs/Point"}}, "Point"),
    ("dataclass", Box, NO_DEFAULT, {"$ref": "#/$defs/Box"}, {"$ref": "#/$defs/Box"},
     {"Box": {"type": "object",
              "properties": {"width": N, "label": {"type": "string", "default": "box"}},
              "required": ["width"]}}),
    ("typeddict", Movie, NO_DEFAULT, {"$ref": "#/$defs/Movie"}, {"$ref": "#/$defs/Movie"},
     {"Movie": {"type": "object", "properties": {"title": S, "year": I},
                "required": ["title"]}}),
    ("model_with_description", Annotated[Point, Field(description="Where.")], NO_DEFAULT,
     {"$ref": "#/$defs/Point", "description": "Where."},
     {"type": "object", "description": "Where.",
      "properties": {"x": I, "y": _nullable(I, "Null means the default (0).")},
      "required": ["x", "y"], "additionalProperties": False}, "Point"),
]

STRICT_DEFS = {
    "Point": {"type": "object", "description": "A point.",
              "properties": {"x": I, "y": _nullable(I, "Null means the default (0).")},
              "required": ["x", "y"], "additionalProperties": False},
    "Box": {"type": "object",
            "properties": {"width": N, "label": _nullable(S, 'Null means the default ("box").')},
            "required": ["width", "label"], "additionalProperties": False},
    "Movie": {"type": "object",
              "properties": {"title": S, "year": _nullable(I, "Null means the default.")},
              "required": ["title", "year"], "additionalProperties": False},
}
POINT_DEF = CASES[-6][5]


def test_table_has_at_least_40_signatures() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    ("annotation", "default", "loose", "strict", "defs"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_exact_schema(annotation: Any, default: Any, loose: Any, strict: Any, defs: Any) -> None:
    if defs == "Point":
        defs = POINT_DEF
    loose_tool = one_param(annotation, default, strict=False)
    expected: dict[str, Any] = {
        "type": "object",
        "properties": {"x": loose},
        "required": [] if default is not NO_DEFAULT else ["x"],
        "additionalProperties": False,
    }
    if defs:
        expected["$defs"] = defs
    assert loose_tool.parameters == expected
    assert loose_tool.strict is False

    auto = one_param(annotation, default)
    if strict is None:
        assert auto.strict is False
        assert auto.parameters == expected
        with pytest.raises(Exception, match="cannot use strict mode"):
            one_param(annotation, default, strict=True)
        return
    expected_strict: dict[str, Any] = {
        "type": "object",
        "properties": {"x": strict},
        "required": ["x"],
        "additionalProperties": False,
    }
    if defs:
        expected_strict["$defs"] = {name: STRICT_DEFS[name] for name in defs}
    assert auto.strict is True
    assert auto.parameters == expected_strict
    assert s.strict_violations(auto.parameters) == []
    assert one_param(annotation, default, strict=True).parameters == expected_strict


def test_multi_parameter_signature_with_docstring() -> None:
    @tool
    def search(query: str, limit: int = 10, tags: list[str] | None = None) -> list[str]:
        """Search the catalogue.

        Args:
            query: Free text.
            limit: Maximum hits.
            tags: Only items with all these tags.
        """
        return []

    assert search.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Free text."},
            "limit": {
                "anyOf": [I, NULL],
                "description": "Maximum hits. Null means the default (10).",
            },
            "tags": {"anyOf": [{"type": "array", "items": S}, NULL],
                     "description": "Only items with all these tags."},
        },
        "required": ["query", "limit", "tags"],
        "additionalProperties": False,
    }


def test_strict_transform_inlines_ref_with_siblings_and_unwraps_single_allof() -> None:
    schema = {
        "type": "object",
        "properties": {"p": {"allOf": [{"$ref": "#/$defs/P"}], "description": "d"}},
        "required": ["p"],
        "$defs": {"P": {"type": "object", "properties": {"a": S}, "required": ["a"]}},
    }
    out = s.to_strict(schema).schema
    assert out["properties"]["p"] == {
        "type": "object", "description": "d", "properties": {"a": S}, "required": ["a"],
        "additionalProperties": False,
    }
    assert s.strict_violations(out) == []


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "array"}, "root of a tool schema must be an object"),
        ({"type": "object", "properties": {"a": {}}}, "a accepts any value"),
        ({"type": "object", "properties": {"a": {"type": "object"}}},
         "a is an object without declared properties"),
        ({"type": "object", "properties": {"a": {"not": S}}}, "a uses 'not'"),
        ({"type": "object", "properties": {"a": {"allOf": [S, I]}}}, "a uses allOf"),
        ({"type": "object", "additionalProperties": S}, "the root is an object with free-form"),
    ],
)
def test_to_strict_explains_what_cannot_be_strict(schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(s.NotStrictError, match=reason):
        s.to_strict(schema)


def test_strict_violations_lists_every_problem() -> None:
    bad = {
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": 1}, "b": {"type": "object"}},
        "required": ["a"],
    }
    assert s.strict_violations(bad) == [
        "root: additionalProperties must be false",
        "root: every property must be required",
        "root.a: keyword 'minLength' not allowed",
        "root.b: object without properties",
        "root.b: additionalProperties must be false",
    ]


def test_oneof_becomes_anyof_in_strict_mode() -> None:
    schema = {"type": "object", "properties": {"a": {"oneOf": [S, I]}}, "required": ["a"]}
    assert s.to_strict(schema).schema["properties"]["a"] == {"anyOf": [S, I]}


def test_describe_names_expected_values() -> None:
    assert s.describe({"type": "array", "items": {"anyOf": [S, NULL]}}) == "array of string or null"
    assert s.describe({"enum": ["c", "f"]}) == 'one of "c", "f"'
    assert s.describe({"$ref": "#/$defs/Point"}) == "object Point"
    assert s.describe({"type": "string", "format": "date"}) == "string (date)"
    assert s.describe({}) == "any JSON value"


def test_instance_errors_checks_structure() -> None:
    schema = {
        "type": "object",
        "properties": {"a": I, "b": {"type": "array", "items": {"enum": ["x"]}}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert s.instance_errors(schema, {"a": 1, "b": ["x"]}) == []
    assert s.instance_errors(schema, {"a": True, "b": ["y"], "c": 1}) == [
        (("a",), "Input should be of type integer"),
        (("b", 0), 'Input should be one of "x"'),
        (("c",), "Extra inputs are not permitted"),
    ]
    assert s.instance_errors(schema, {}) == [(("a",), "Field required")]
