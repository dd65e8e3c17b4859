"""JSON-schema helpers: Python type → schema, the OpenAI strict-mode transform and checks.

* :func:`type_schema` maps an annotation to a JSON schema. Common types are mapped here,
  because asking pydantic for each one would blow the decoration budget; models,
  dataclasses and TypedDicts go through pydantic and land in ``$defs``.
* :func:`to_strict` rewrites a schema into OpenAI's strict form or says why it cannot;
  :func:`strict_violations` checks a schema against the strict rules.
* :func:`instance_errors` is a small structural validator for hand-written tool schemas.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pathlib
import types
import typing
import uuid
from collections import abc
from dataclasses import dataclass
from typing import Any, Literal, Union

import annotated_types
import typing_extensions
from pydantic import BaseModel, TypeAdapter
from pydantic.errors import PydanticUserError
from pydantic.fields import FieldInfo

__all__ = [
    "NotStrictError", "StrictSchema", "UnsupportedTypeError", "allows_null", "describe",
    "instance_errors", "resolve_ref", "strict_violations", "strip_titles", "to_strict",
    "type_schema",
]  # fmt: skip

JsonSchema = dict[str, Any]

#: ``format`` values OpenAI accepts in strict mode.
STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
#: Keywords kept as they are in strict mode.
_STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "$ref", "$defs", "description", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip
#: Annotation-only keywords, dropped in strict mode (they constrain nothing).
_DROPPED_KEYWORDS = frozenset(
    {"title", "examples", "default", "$comment", "readOnly", "writeOnly", "deprecated",
     "discriminator", "$schema", "$id"}
)  # fmt: skip
#: Constraints strict mode cannot express: pydantic still enforces them on the arguments,
#: so they move into the description where the model can read them.
_NOTED_KEYWORDS = {
    "minLength": "At least {} characters.",
    "maxLength": "At most {} characters.",
    "minProperties": "At least {} entries.",
    "maxProperties": "At most {} entries.",
}
_DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_NULL: JsonSchema = {"type": "null"}


class UnsupportedTypeError(TypeError):
    """An annotation cannot become a JSON schema; ``reason`` and ``fix`` are for humans."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}. Fix: {fix}")
        self.reason = reason
        self.fix = fix


class NotStrictError(ValueError):
    """A schema cannot be expressed in OpenAI strict mode; the message says where and why."""


# --- type → schema ------------------------------------------------------------------

_SCALARS: dict[Any, JsonSchema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): _NULL,
    None: _NULL,
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    datetime.timedelta: {"type": "string", "format": "duration"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    pathlib.Path: {"type": "string", "format": "path"},
    pathlib.PurePath: {"type": "string", "format": "path"},
    decimal.Decimal: {
        "anyOf": [{"type": "number"}, {"type": "string", "pattern": _DECIMAL_PATTERN}]
    },
}
_ARRAYS = {list, abc.Sequence, abc.MutableSequence, typing.List, typing.Sequence}  # noqa: UP006
_SETS = {set, frozenset, abc.Set, abc.MutableSet, typing.Set, typing.FrozenSet}  # noqa: UP006
_MAPPINGS = {dict, abc.Mapping, abc.MutableMapping, typing.Dict, typing.Mapping}  # noqa: UP006
_UNIONS = {Union, types.UnionType}
_ENUM_TYPES = (({str}, "string"), ({bool}, "boolean"), ({int}, "integer"), ({int, float}, "number"))
_JSON_FIX = (
    "use a JSON-compatible type: str, int, float, bool, a Literal, an Enum, list[T], "
    "dict[str, T], a pydantic model, a dataclass or a TypedDict"
)


def type_schema(annotation: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    """The JSON schema of ``annotation``; named sub-schemas are added to ``defs``.

    Raises:
        UnsupportedTypeError: The annotation has no JSON representation.
    """
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return dict(scalar)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated or origin is typing_extensions.Annotated:
        return _apply_metadata(type_schema(args[0], defs), args[1:])
    if origin in _UNIONS:
        return _union_schema(args, defs)
    if origin is Literal or origin is typing_extensions.Literal:
        return _enum_schema(list(args))
    if annotation in _ARRAYS or origin in _ARRAYS:
        return {"type": "array", "items": type_schema(args[0], defs) if args else {}}
    if annotation in _SETS or origin in _SETS:
        items = type_schema(args[0], defs) if args else {}
        return {"type": "array", "items": items, "uniqueItems": True}
    if annotation is tuple or origin is tuple:
        return _tuple_schema(args, defs)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if not args:
            return {"type": "object"}
        if args[0] not in (str, int):
            raise UnsupportedTypeError(
                f"has keys of type {_type_name(args[0])}; JSON object keys are strings",
                "use dict[str, T]",
            )
        return {"type": "object", "additionalProperties": type_schema(args[1], defs)}
    if annotation is Any:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_schema([member.value for member in annotation])
    if hasattr(annotation, "__supertype__"):  # typing.NewType
        return type_schema(annotation.__supertype__, defs)
    return _pydantic_schema(annotation, defs)


def _union_schema(members: tuple[Any, ...], defs: dict[str, JsonSchema]) -> JsonSchema:
    branches: list[JsonSchema] = []
    nullable = False
    for member in members:
        if member is type(None) or member is None:
            nullable = True
            continue
        schema = type_schema(member, defs)
        # Flatten nested unions so the model sees one flat list of alternatives.
        branches.extend(schema["anyOf"] if set(schema) == {"anyOf"} else [schema])
    if nullable:
        branches.append(dict(_NULL))
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def _enum_schema(values: list[Any]) -> JsonSchema:
    if not values:
        raise UnsupportedTypeError("is an empty Literal/Enum", "give it at least one value")
    for value in values:
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise UnsupportedTypeError(
                f"has the value {value!r}, which is not a JSON scalar",
                "use str, int, float, bool or None values in Literal/Enum",
            )
    if None in values:
        rest = [v for v in values if v is not None]
        return {"anyOf": [_enum_schema(rest), dict(_NULL)]} if rest else dict(_NULL)
    kinds = {type(v) for v in values}
    kind = next((name for allowed, name in _ENUM_TYPES if kinds <= allowed), None)
    return {"type": kind, "enum": values} if kind else {"enum": values}


def _tuple_schema(args: tuple[Any, ...], defs: dict[str, JsonSchema]) -> JsonSchema:
    if not args:
        return {"type": "array", "items": {}}
    if len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": type_schema(args[0], defs)}
    if args == ((),):  # tuple[()]
        return {"type": "array", "maxItems": 0}
    items = [type_schema(arg, defs) for arg in args]
    return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}


def _pydantic_schema(annotation: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    if annotation is object:
        raise UnsupportedTypeError(
            "is a bare `object`, which says nothing about the value",
            "use a concrete type, or typing.Any if any JSON value is acceptable",
        )
    origin = typing.get_origin(annotation) or annotation
    if origin in (abc.Callable, typing.Callable) or (
        callable(annotation) and not isinstance(annotation, type) and origin is annotation
    ):
        raise UnsupportedTypeError(
            f"is {_type_name(annotation)}, which cannot be sent as JSON", _JSON_FIX
        )
    if isinstance(annotation, typing.TypeVar):
        raise UnsupportedTypeError(
            f"is the type variable {annotation}, which has no schema", "use a concrete type"
        )
    try:
        raw = TypeAdapter(annotation).json_schema(ref_template="#/$defs/{model}")
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise UnsupportedTypeError(
            f"is {_type_name(annotation)}, which pydantic cannot describe as JSON "
            f"({type(exc).__name__})",
            _JSON_FIX,
        ) from None
    schema: JsonSchema = strip_titles(raw)
    for name, sub in schema.pop("$defs", {}).items():
        _add_def(defs, name, sub)
    named = isinstance(annotation, type) and (
        issubclass(annotation, BaseModel)
        or dataclasses.is_dataclass(annotation)
        or typing_extensions.is_typeddict(annotation)
    )
    if named and "$ref" not in schema:
        # Named types always go to $defs, so they are described once however often used.
        _add_def(defs, annotation.__name__, schema)
        return {"$ref": f"#/$defs/{annotation.__name__}"}
    return schema


def _add_def(defs: dict[str, JsonSchema], name: str, schema: JsonSchema) -> None:
    if defs.get(name, schema) != schema:
        raise UnsupportedTypeError(
            f"uses two different types both named {name!r}",
            "rename one of them; schema definitions are keyed by class name",
        )
    defs[name] = schema


def _apply_metadata(schema: JsonSchema, metadata: tuple[Any, ...]) -> JsonSchema:
    """Apply ``Annotated`` metadata: descriptions (Field wins over a plain string) and
    ``Field``/annotated-types constraints."""
    text: str | None = None
    field_description: str | None = None
    for item in metadata:
        if isinstance(item, str):
            text = item
        elif isinstance(item, FieldInfo):
            field_description = item.description or field_description
            if item.examples:
                schema["examples"] = list(item.examples)
            if isinstance(item.json_schema_extra, dict):
                schema.update(item.json_schema_extra)
            for constraint in item.metadata:
                _apply_constraint(schema, constraint)
        else:
            _apply_constraint(schema, item)
    if field_description or text:
        schema["description"] = field_description or text
    return schema


_BOUNDS = {
    annotated_types.Gt: ("exclusiveMinimum", "gt"),
    annotated_types.Ge: ("minimum", "ge"),
    annotated_types.Lt: ("exclusiveMaximum", "lt"),
    annotated_types.Le: ("maximum", "le"),
    annotated_types.MultipleOf: ("multipleOf", "multiple_of"),
}


def _apply_constraint(schema: JsonSchema, constraint: Any) -> None:
    bound = _BOUNDS.get(type(constraint))
    if bound is not None:
        schema[bound[0]] = getattr(constraint, bound[1])
    elif isinstance(constraint, annotated_types.MinLen | annotated_types.MaxLen):
        suffix = {"array": "Items", "object": "Properties"}.get(schema.get("type", ""), "Length")
        if isinstance(constraint, annotated_types.MinLen):
            schema["min" + suffix] = constraint.min_length
        else:
            schema["max" + suffix] = constraint.max_length
    elif getattr(constraint, "pattern", None) is not None:
        pattern = constraint.pattern
        schema["pattern"] = pattern if isinstance(pattern, str) else pattern.pattern
    # Anything else (validators, Strict(), ...) is enforced by pydantic and has no schema.


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


# --- schema utilities ---------------------------------------------------------------

#: Keywords whose values are data, not schemas (a "title" key in them is not a title).
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})


def strip_titles(schema: Any) -> Any:
    """A copy of ``schema`` without ``title`` keywords (pydantic adds one everywhere; they
    cost tokens and tell the model nothing the property name does not)."""
    if isinstance(schema, list):
        return [strip_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: value if key in _DATA_KEYWORDS else strip_titles(value)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }


def allows_null(schema: JsonSchema) -> bool:
    """Whether ``schema`` (shallowly) accepts ``null``."""
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if None in schema.get("enum", ()) or ("const" in schema and schema["const"] is None):
        return True
    return any(allows_null(branch) for branch in schema.get("anyOf", ()))


def resolve_ref(root: JsonSchema, ref: str) -> JsonSchema:
    """The schema a local ``$ref`` (``#/$defs/Name`` style) points to."""
    if not ref.startswith("#/"):
        raise NotStrictError(f"only local $ref values are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise NotStrictError(f"$ref {ref!r} does not point to a schema")
    return node


def describe(schema: JsonSchema) -> str:
    """A short human (and model) readable name for what ``schema`` accepts."""
    kind = schema.get("type")
    if "$ref" in schema:
        return "object " + str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "anyOf" in schema:
        return " or ".join(describe(branch) for branch in schema["anyOf"])
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"]:
        return "array of " + describe(schema["items"])
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return kind if isinstance(kind, str) else "any JSON value"


# --- strict mode --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrictSchema:
    """The result of :func:`to_strict`.

    Attributes:
        schema: The strict schema.
        null_means_default: For each object schema inside ``schema`` (keyed by ``id()``
            of that dict), the properties made nullable because they were optional: a
            ``null`` there means "not given", so it is removed before validation.
    """

    schema: JsonSchema
    null_means_default: dict[int, frozenset[str]]


def to_strict(schema: JsonSchema) -> StrictSchema:
    """Rewrite ``schema`` (an object schema) into OpenAI strict form.

    Every object gets ``additionalProperties: false`` and lists every property as
    required; a property that was optional and does not accept null becomes nullable,
    with a description note that null means the default. Constraints strict mode cannot
    express (``minLength``, ``maxLength``, unknown formats, ...) move into descriptions;
    annotation-only keywords (``title``, ``default``, ``examples``) are dropped.

    Raises:
        NotStrictError: Some part cannot be expressed (free-form ``dict`` keys, tuples,
            ``Any``, ``not``/``allOf`` combinations, a non-object root, ...).
    """
    if schema.get("type") != "object":
        raise NotStrictError("the root of a tool schema must be an object")
    drops: dict[int, frozenset[str]] = {}

    def convert(node: Any, path: str) -> JsonSchema:
        where = path or "the root"
        if not isinstance(node, dict) or not node:
            raise NotStrictError(f"{where} accepts any value; strict mode needs a type")
        if "$ref" in node and len(node) > 1:
            # Strict mode does not allow keywords next to $ref: inline the target.
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**resolve_ref(schema, node["$ref"]), **siblings}
        if "allOf" in node:
            if len(node["allOf"]) != 1:
                raise NotStrictError(f"{where} uses allOf, which strict mode does not support")
            rest = {k: v for k, v in node.items() if k != "allOf"}
            return convert({**rest, **node["allOf"][0]}, path)
        out: JsonSchema = {}
        notes: list[str] = []
        for key, value in node.items():
            if key in ("anyOf", "oneOf"):
                # oneOf (pydantic's discriminated unions) accepts a subset of what anyOf
                # does for disjoint branches, and only anyOf is allowed.
                out["anyOf"] = [convert(b, f"{path}.{key}[{i}]") for i, b in enumerate(value)]
            elif key == "items":
                out["items"] = convert(value, f"{path}[]")
            elif key == "format" and value not in STRICT_FORMATS:
                notes.append(f"Format: {value}.")
            elif key == "uniqueItems":
                notes += ["Items must be unique."] if value else []
            elif key in _NOTED_KEYWORDS:
                notes.append(_NOTED_KEYWORDS[key].format(value))
            elif key in _STRICT_KEYWORDS:
                if key not in ("properties", "required", "additionalProperties", "$defs"):
                    out[key] = value
            elif key not in _DROPPED_KEYWORDS:
                raise NotStrictError(
                    f"{where} uses {key!r}, which strict mode does not support"
                    + (" (tuples become prefixItems)" if key == "prefixItems" else "")
                )
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") not in (None, False):
                raise NotStrictError(
                    f"{where} is an object with free-form keys (like dict[str, T]); strict "
                    "mode needs fixed properties"
                )
            if node.get("properties") is None:
                raise NotStrictError(f"{where} is an object without declared properties")
            required = set(node.get("required", ()))
            properties: JsonSchema = {}
            nullable_optional: list[str] = []
            for name, sub in node["properties"].items():
                prop = convert(sub, f"{path}.{name}" if path else name)
                if name not in required and not allows_null(prop):
                    prop = _nullable(prop, sub)
                    nullable_optional.append(name)
                properties[name] = prop
            out.update(properties=properties, required=list(properties))
            out["additionalProperties"] = False
            if nullable_optional:
                drops[id(out)] = frozenset(nullable_optional)
        if notes:
            first = [out["description"]] if out.get("description") else []
            out["description"] = " ".join(first + notes)
        return out

    out = convert(schema, "")
    if schema.get("$defs"):
        defs = schema["$defs"].items()
        out["$defs"] = {name: convert(sub, f"$defs.{name}") for name, sub in defs}
    return StrictSchema(out, drops)


def _nullable(prop: JsonSchema, original: JsonSchema) -> JsonSchema:
    description = prop.pop("description", None)
    note = "Null means the default."
    if "default" in original:
        note = f"Null means the default ({json.dumps(original['default'])})."
    branches = prop["anyOf"] if set(prop) == {"anyOf"} else [prop]
    return {
        "anyOf": [*branches, dict(_NULL)],
        "description": f"{description} {note}" if description else note,
    }


def strict_violations(schema: JsonSchema) -> list[str]:
    """Every way ``schema`` breaks OpenAI's strict rules (empty when it complies)."""
    problems = [] if schema.get("type") == "object" else ["root: must be an object"]

    def check(node: Any, path: str) -> None:
        if not isinstance(node, dict) or not node:
            problems.append(f"{path}: must be a non-empty schema")
            return
        problems.extend(
            f"{path}: keyword {k!r} not allowed"
            for k in node
            if k not in _STRICT_KEYWORDS
        )
        if "$ref" in node and len(node) > 1:
            problems.append(f"{path}: $ref must stand alone")
        if "format" in node and node["format"] not in STRICT_FORMATS:
            problems.append(f"{path}: format {node['format']!r} not allowed")
        if node.get("type") == "object" or "properties" in node:
            properties = node.get("properties")
            if not isinstance(properties, dict):
                problems.append(f"{path}: object without properties")
                properties = {}
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if set(node.get("required", ())) != set(properties):
                problems.append(f"{path}: every property must be required")
            for name, sub in properties.items():
                check(sub, f"{path}.{name}")
        if "items" in node:
            check(node["items"], f"{path}[]")
        for i, branch in enumerate(node.get("anyOf", ())):
            check(branch, f"{path}.anyOf[{i}]")
        for name, sub in node.get("$defs", {}).items():
            check(sub, f"$defs.{name}")

    check(schema, "root")
    return problems


# --- light validation (hand-built tools) ---------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list, tuple),
    "object": (dict,),
}


def instance_errors(
    schema: JsonSchema, value: Any, root: JsonSchema | None = None, loc: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], str]]:
    """Check ``value`` against the structural core of ``schema`` (types, enum/const,
    required and unknown properties, items, anyOf/oneOf/allOf, local $ref).

    A deliberately small validator for hand-built tools, whose functions get the raw
    arguments: it catches the mistakes models make without a JSON-Schema dependency.
    Returns ``(location, message)`` pairs, empty when the value passes.
    """
    root = schema if root is None else root
    if "$ref" in schema:
        target = resolve_ref(root, schema["$ref"])
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return [(loc, f"Input should be of type {' or '.join(kinds)}")]
    errors: list[tuple[tuple[Any, ...], str]] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append((loc, f"Input should be {describe({'enum': schema['enum']})}"))
    if "const" in schema and value != schema["const"]:
        errors.append((loc, f"Input should be {json.dumps(schema['const'])}"))
    for key in ("anyOf", "oneOf"):
        if key in schema and all(instance_errors(b, value, root, loc) for b in schema[key]):
            errors.append((loc, f"Input should be {describe({'anyOf': schema[key]})}"))
    for branch in schema.get("allOf", ()):
        errors.extend(instance_errors(branch, value, root, loc))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        missing = [n for n in schema.get("required", ()) if n not in value]
        errors.extend(((*loc, name), "Field required") for name in missing)
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors.extend(instance_errors(properties[name], item, root, (*loc, name)))
            elif extra is False:
                errors.append(((*loc, name), "Extra inputs are not permitted"))
            elif isinstance(extra, dict):
                errors.extend(instance_errors(extra, item, root, (*loc, name)))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(instance_errors(schema["items"], item, root, (*loc, i)))
    return errors


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))
