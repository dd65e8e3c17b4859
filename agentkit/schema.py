"""JSON-schema helpers: Python type → schema, the OpenAI strict-mode transform and checks.

Three jobs, each a pure function over plain ``dict`` schemas:

* :func:`type_schema` turns an annotation into a JSON schema. Common types (scalars,
  unions, literals, enums, containers, dates, ``Annotated`` constraints) are mapped
  directly, because asking pydantic for each one would blow the decoration budget; models,
  dataclasses and TypedDicts go through pydantic and land in ``$defs``.
* :func:`to_strict` rewrites a schema into OpenAI's strict form (every object closed, every
  property required, optional properties nullable) or says why it cannot.
* :func:`strict_violations` checks a schema against the strict rules.
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
    "NotStrictError",
    "StrictSchema",
    "UnsupportedTypeError",
    "allows_null",
    "describe",
    "instance_errors",
    "strict_violations",
    "strip_titles",
    "to_strict",
    "type_schema",
]

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
    type(None): {"type": "null"},
    None: {"type": "null"},
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
    if origin is typing.Annotated or origin is typing_extensions.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _apply_metadata(type_schema(base, defs), metadata)
    if origin in _UNIONS:
        return _union_schema(typing.get_args(annotation), defs)
    if origin is Literal or origin is typing_extensions.Literal:
        return _enum_schema(list(typing.get_args(annotation)))
    if annotation in _ARRAYS or origin in _ARRAYS:
        return {"type": "array", "items": _item_schema(annotation, defs)}
    if annotation in _SETS or origin in _SETS:
        return {"type": "array", "items": _item_schema(annotation, defs), "uniqueItems": True}
    if annotation is tuple or origin is tuple:
        return _tuple_schema(annotation, defs)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return _mapping_schema(annotation, defs)
    if annotation is Any:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_schema([member.value for member in annotation])
    if hasattr(annotation, "__supertype__"):  # typing.NewType
        return type_schema(annotation.__supertype__, defs)
    return _pydantic_schema(annotation, defs)


def _item_schema(annotation: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    args = typing.get_args(annotation)
    return type_schema(args[0], defs) if args else {}


def _union_schema(members: tuple[Any, ...], defs: dict[str, JsonSchema]) -> JsonSchema:
    branches: list[JsonSchema] = []
    nullable = False
    for member in members:
        if member is type(None) or member is None:
            nullable = True
            continue
        schema = type_schema(member, defs)
        # Flatten nested unions so the model sees one flat list of alternatives.
        if set(schema) == {"anyOf"}:
            branches.extend(schema["anyOf"])
        else:
            branches.append(schema)
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
    schema: JsonSchema = {}
    if kinds == {str}:
        schema["type"] = "string"
    elif kinds == {bool}:
        schema["type"] = "boolean"
    elif kinds == {int}:
        schema["type"] = "integer"
    elif kinds <= {int, float}:
        schema["type"] = "number"
    schema["enum"] = values
    return schema


def _tuple_schema(annotation: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    args = typing.get_args(annotation)
    if not args:
        return {"type": "array", "items": {}}
    if len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": type_schema(args[0], defs)}
    if args == ((),):  # tuple[()]
        return {"type": "array", "maxItems": 0}
    items = [type_schema(arg, defs) for arg in args]
    return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}


def _mapping_schema(annotation: Any, defs: dict[str, JsonSchema]) -> JsonSchema:
    args = typing.get_args(annotation)
    if not args:
        return {"type": "object"}
    if args[0] not in (str, int):
        raise UnsupportedTypeError(
            f"has keys of type {_type_name(args[0])}; JSON object keys are strings",
            "use dict[str, T]",
        )
    return {"type": "object", "additionalProperties": type_schema(args[1], defs)}


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
    is_structured = isinstance(annotation, type) and (
        issubclass(annotation, BaseModel)
        or dataclasses.is_dataclass(annotation)
        or typing_extensions.is_typeddict(annotation)
    )
    try:
        schema = TypeAdapter(annotation).json_schema(ref_template="#/$defs/{model}")
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise UnsupportedTypeError(
            f"is {_type_name(annotation)}, which pydantic cannot describe as JSON "
            f"({type(exc).__name__})",
            _JSON_FIX,
        ) from None
    schema = strip_titles(schema)
    for name, sub in schema.pop("$defs", {}).items():
        _add_def(defs, name, sub)
    if is_structured and "$ref" not in schema:
        # Named types always go to $defs, so they are described once however often used.
        name = annotation.__name__
        _add_def(defs, name, schema)
        return {"$ref": f"#/$defs/{name}"}
    return schema


def _add_def(defs: dict[str, JsonSchema], name: str, schema: JsonSchema) -> None:
    existing = defs.get(name)
    if existing is not None and existing != schema:
        raise UnsupportedTypeError(
            f"uses two different types both named {name!r}",
            "rename one of them; schema definitions are keyed by class name",
        )
    defs[name] = schema


def _apply_metadata(schema: JsonSchema, metadata: list[Any]) -> JsonSchema:
    """Apply ``Annotated`` metadata: descriptions (Field wins over a plain string) and
    ``Field``/annotated-types constraints."""
    text: str | None = None
    field_description: str | None = None
    constraints: list[Any] = []
    for item in metadata:
        if isinstance(item, str):
            text = item
        elif isinstance(item, FieldInfo):
            if item.description:
                field_description = item.description
            if item.examples:
                schema["examples"] = list(item.examples)
            if isinstance(item.json_schema_extra, dict):
                schema.update(item.json_schema_extra)
            constraints.extend(item.metadata)
        else:
            constraints.append(item)
    for constraint in constraints:
        _apply_constraint(schema, constraint)
    description = field_description or text
    if description:
        schema["description"] = description
    return schema


def _apply_constraint(schema: JsonSchema, constraint: Any) -> None:
    kind = schema.get("type")
    if isinstance(constraint, annotated_types.Gt):
        schema["exclusiveMinimum"] = constraint.gt
    elif isinstance(constraint, annotated_types.Ge):
        schema["minimum"] = constraint.ge
    elif isinstance(constraint, annotated_types.Lt):
        schema["exclusiveMaximum"] = constraint.lt
    elif isinstance(constraint, annotated_types.Le):
        schema["maximum"] = constraint.le
    elif isinstance(constraint, annotated_types.MultipleOf):
        schema["multipleOf"] = constraint.multiple_of
    elif isinstance(constraint, annotated_types.MinLen | annotated_types.MaxLen):
        suffix = {"array": "Items", "object": "Properties"}.get(kind or "", "Length")
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

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = (
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
)  # fmt: skip


def strip_titles(schema: JsonSchema) -> JsonSchema:
    """A copy of ``schema`` without ``title`` keywords (pydantic adds one everywhere; they
    cost tokens and tell the model nothing the property name does not)."""
    out: JsonSchema = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: strip_titles(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_titles(v) if isinstance(v, dict) else v for v in value]
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            out[key] = strip_titles(value)
        else:
            out[key] = value
    return out


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


def describe(schema: JsonSchema, root: JsonSchema | None = None) -> str:
    """A short human (and model) readable name for what ``schema`` accepts."""
    if "$ref" in schema:
        return "object " + str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "anyOf" in schema:
        return " or ".join(describe(branch, root) for branch in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"]:
        return "array of " + describe(schema["items"], root)
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
    converter = _StrictConverter(schema)
    out = converter.convert(schema, "")
    defs = schema.get("$defs")
    if defs:
        out["$defs"] = {name: converter.convert(sub, f"$defs.{name}") for name, sub in defs.items()}
    return StrictSchema(out, converter.drops)


class _StrictConverter:
    def __init__(self, root: JsonSchema) -> None:
        self.root = root
        self.drops: dict[int, frozenset[str]] = {}

    def convert(self, node: Any, path: str) -> JsonSchema:
        where = path or "the root"
        if not isinstance(node, dict) or not node:
            raise NotStrictError(f"{where} accepts any value; strict mode needs a type")
        if "$ref" in node and len(node) > 1:
            # Strict mode does not allow keywords next to $ref: inline the target.
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**resolve_ref(self.root, node["$ref"]), **siblings}
        if "allOf" in node:
            parts = node["allOf"]
            if len(parts) != 1:
                raise NotStrictError(f"{where} uses allOf, which strict mode does not support")
            node = {**{k: v for k, v in node.items() if k != "allOf"}, **parts[0]}
            return self.convert(node, path)
        out: JsonSchema = {}
        notes: list[str] = []
        for key, value in node.items():
            if key in ("properties", "required", "additionalProperties", "$defs"):
                continue
            if key in ("anyOf", "oneOf"):
                # oneOf (pydantic's discriminated unions) accepts a subset of what anyOf
                # does for disjoint branches, and only anyOf is allowed.
                out["anyOf"] = [self.convert(b, f"{path}.{key}[{i}]") for i, b in enumerate(value)]
            elif key == "items":
                out["items"] = self.convert(value, f"{path}[]")
            elif key == "format" and value not in STRICT_FORMATS:
                notes.append(f"Format: {value}.")
            elif key == "uniqueItems":
                if value:
                    notes.append("Items must be unique.")
            elif key in _NOTED_KEYWORDS:
                notes.append(_NOTED_KEYWORDS[key].format(value))
            elif key in _STRICT_KEYWORDS:
                out[key] = value
            elif key not in _DROPPED_KEYWORDS:
                raise NotStrictError(
                    f"{where} uses {key!r}, which strict mode does not support"
                    + (" (tuples become prefixItems)" if key == "prefixItems" else "")
                )
        if node.get("type") == "object" or "properties" in node:
            self._convert_object(node, out, path)
        if notes:
            out["description"] = " ".join(
                [out["description"], *notes] if out.get("description") else notes
            )
        return out

    def _convert_object(self, node: JsonSchema, out: JsonSchema, path: str) -> None:
        where = path or "the root"
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            raise NotStrictError(
                f"{where} is an object with free-form keys (like dict[str, T]); strict mode "
                "needs fixed properties"
            )
        properties = node.get("properties")
        if properties is None:
            raise NotStrictError(f"{where} is an object without declared properties")
        required = set(node.get("required", ()))
        converted: JsonSchema = {}
        nullable_optional: list[str] = []
        for name, sub in properties.items():
            prop = self.convert(sub, f"{path}.{name}" if path else name)
            if name not in required and not allows_null(prop):
                prop = _nullable(prop, sub)
                nullable_optional.append(name)
            converted[name] = prop
        out["properties"] = converted
        out["required"] = list(properties)
        out["additionalProperties"] = False
        if nullable_optional:
            self.drops[id(out)] = frozenset(nullable_optional)


def _nullable(prop: JsonSchema, original: JsonSchema) -> JsonSchema:
    description = prop.pop("description", None)
    if "default" in original:
        note = f"Null means the default ({json.dumps(original['default'])})."
    else:
        note = "Null means the default."
    branches = prop["anyOf"] if set(prop) == {"anyOf"} else [prop]
    return {
        "anyOf": [*branches, dict(_NULL)],
        "description": f"{description} {note}" if description else note,
    }


def strict_violations(schema: JsonSchema) -> list[str]:
    """Every way ``schema`` breaks OpenAI's strict rules (empty when it complies)."""
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("root: must be an object")

    def check(node: Any, path: str) -> None:
        if not isinstance(node, dict) or not node:
            problems.append(f"{path}: must be a non-empty schema")
            return
        for key in node:
            if key not in _STRICT_KEYWORDS:
                problems.append(f"{path}: keyword {key!r} not allowed")
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
        schema = {
            **resolve_ref(root, schema["$ref"]),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    errors: list[tuple[tuple[Any, ...], str]] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return [(loc, f"Input should be of type {' or '.join(kinds)}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append((loc, f"Input should be {describe({'enum': schema['enum']})}"))
    if "const" in schema and value != schema["const"]:
        errors.append((loc, f"Input should be {json.dumps(schema['const'])}"))
    for key in ("anyOf", "oneOf"):
        if key in schema and not any(
            not instance_errors(branch, value, root, loc) for branch in schema[key]
        ):
            errors.append((loc, f"Input should be {describe({'anyOf': schema[key]})}"))
    for branch in schema.get("allOf", ()):
        errors.extend(instance_errors(branch, value, root, loc))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(((*loc, name), "Field required"))
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
