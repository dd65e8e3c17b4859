"""Property test: random compositions of supported annotations give valid JSON Schema
(2020-12), strict schemas obey every strict rule, and values generated for the schema
come back through Tool.invoke as the right Python types."""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import uuid
from typing import Annotated, Any, Literal, Optional

import anyio
import jsonschema
import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from agentkit import schema as s
from agentkit.tools import tool


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


class Item(BaseModel):
    name: str
    qty: int = 1


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)

# (annotation, strategy for Python values of it, hashable?)
LEAVES: list[tuple[Any, st.SearchStrategy[Any], bool]] = [
    (str, TEXT, True),
    (int, st.integers(-(2**53), 2**53), True),
    (float, FLOATS, True),
    (bool, st.booleans(), True),
    (Literal["a", "b"], st.sampled_from(["a", "b"]), True),
    (Shade, st.sampled_from(list(Shade)), True),
    (datetime.date, st.dates(), True),
    (datetime.datetime, st.datetimes(), True),
    (uuid.UUID, st.uuids(), True),
    (decimal.Decimal, st.decimals(allow_nan=False, allow_infinity=False, places=3,
                                  min_value=-(10**6), max_value=10**6), True),
    (Annotated[int, Field(ge=0, le=100)], st.integers(0, 100), True),
    (Item, st.builds(Item, name=TEXT, qty=st.integers(0, 9)), False),
]


def _compose(depth: int) -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any], bool]]:
    leaves = st.sampled_from(LEAVES)
    if depth == 0:
        return leaves

    def wrap(inner: tuple[Any, st.SearchStrategy[Any], bool]) -> st.SearchStrategy[Any]:
        ann, values, hashable = inner
        options = [
            st.just((list[ann], st.lists(values, max_size=3), False)),  # type: ignore[valid-type]
            st.just((Optional[ann], st.none() | values, hashable)),  # noqa: UP045
            st.just((dict[str, ann], st.dictionaries(TEXT, values, max_size=3), False)),  # type: ignore[valid-type]
            st.just((tuple[ann, ...], st.lists(values, max_size=3).map(tuple), hashable)),  # type: ignore[valid-type]
        ]
        if hashable:
            options.append(st.just((set[ann], st.sets(values, max_size=3), False)))  # type: ignore[valid-type]
        return st.one_of(options)

    return st.one_of(leaves, _compose(depth - 1).flatmap(wrap))


@st.composite
def signatures(draw: st.DrawFn) -> tuple[list[tuple[str, Any, bool]], dict[str, Any]]:
    count = draw(st.integers(1, 4))
    params: list[tuple[str, Any, bool]] = []
    values: dict[str, Any] = {}
    for i in range(count):
        ann, strategy, _ = draw(_compose(2))
        has_default = draw(st.booleans())
        params.append((f"p{i}", ann, has_default))
        if not has_default or draw(st.booleans()):
            values[f"p{i}"] = draw(strategy)
    return params, values


def _make(params: list[tuple[str, Any, bool]], sentinel: object) -> Any:
    received: dict[str, Any] = {}

    def fn(**kwargs: Any) -> None:
        received.update(kwargs)

    fn.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                          default=sentinel if has_default else inspect.Parameter.empty)
        for name, _, has_default in params
    ])
    fn.__annotations__ = {name: ann for name, ann, _ in params}
    return fn, received


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signatures())
def test_schemas_are_valid_and_values_round_trip(
    case: tuple[list[tuple[str, Any, bool]], dict[str, Any]],
) -> None:
    params, values = case
    sentinel = object()
    fn, received = _make(params, sentinel)
    t = tool(fn)
    jsonschema.Draft202012Validator.check_schema(t.parameters)
    if t.strict:
        assert s.strict_violations(t.parameters) == []
    arguments = pydantic.TypeAdapter(dict[str, Any]).dump_python(values, mode="json")
    loose = tool(strict=False)(fn).parameters["properties"]
    if t.strict:
        # Strict mode: every parameter is sent; null stands for "use the default"
        # unless the type itself accepts null.
        for name, _, _ in params:
            arguments.setdefault(name, None)
    jsonschema.Draft202012Validator(t.parameters).validate(arguments)
    result = anyio.run(t.invoke, arguments)
    assert not result.is_error, result.content
    annotations = {name: ann for name, ann, _ in params}
    for name, _, has_default in params:
        if name in values:
            expected = pydantic.TypeAdapter(annotations[name]).validate_python(values[name])
            assert received[name] == expected
            assert type(received[name]) is type(expected)
        elif t.strict and s.allows_null(loose[name]):
            assert received[name] is None
        else:
            assert has_default and received.get(name, sentinel) is sentinel
