"""Generate a valid, deterministic instance of a JSON schema (used by ``TestModel``).

Covers what tool and output schemas contain in practice: ``const``, ``enum``,
``anyOf``/``oneOf``/``allOf``, type lists (nullable), objects with ``$defs``/``$ref``,
arrays (``items``, ``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``), string
formats, ``minLength``/``maxLength``/``pattern`` (a common regex subset), and numeric bounds
including exclusive ones and ``multipleOf``. The same schema and seed always give the same
value.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import string
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from agentkit.errors import ConfigurationError

__all__ = ["generate_value"]

_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
)
# Past this nesting depth optional parts are left out, so recursive schemas terminate.
_MAX_DEPTH = 6
_PATTERN_ATTEMPTS = 50


def generate_value(schema: Mapping[str, Any], seed: int | str = 0) -> Any:
    """Return a value valid against ``schema``, the same one for the same ``seed``.

    Raises ConfigurationError for a schema it cannot satisfy (e.g. an unresolvable
    ``$ref`` or an unsupported regex construct), naming the offending part.
    """
    return _Generator(schema, random.Random(str(seed))).value(schema, 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    # --- dispatch ---------------------------------------------------------------------

    def value(self, schema: Mapping[str, Any] | bool, depth: int) -> Any:
        if schema is True or schema == {}:
            return self.rng.choice(_WORDS)
        if schema is False or not isinstance(schema, Mapping):
            raise ConfigurationError(f"cannot generate a value for the schema {schema!r}")
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value({**target, **rest}, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        if "allOf" in schema:
            return self.value(_merge_all_of(schema), depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                return self.value({**rest, **self.pick_branch(schema[key], depth)}, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = self.pick_type(kind, depth)
        if kind is None:
            kind = _infer_type(schema)
        method = getattr(self, f"gen_{kind}", None)
        if method is None:
            raise ConfigurationError(f"cannot generate a value of JSON type {kind!r}")
        return method(schema, depth)

    def resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ConfigurationError(f"only local $ref values are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigurationError(f"the $ref {ref!r} does not resolve in the schema")
            node = node[part]
        if not isinstance(node, Mapping):
            raise ConfigurationError(f"the $ref {ref!r} does not point to a schema")
        return node

    def pick_branch(self, branches: list[Any], depth: int) -> Any:
        if depth >= _MAX_DEPTH:
            # Deep in a recursive schema: prefer a branch that cannot recurse further.
            for branch in branches:
                if isinstance(branch, Mapping) and branch.get("type") == "null":
                    return branch
            for branch in branches:
                if isinstance(branch, Mapping) and "$ref" not in branch:
                    return branch
        return self.rng.choice(branches)

    def pick_type(self, kinds: list[str], depth: int) -> str:
        if depth >= _MAX_DEPTH and "null" in kinds:
            return "null"
        return str(self.rng.choice(kinds))

    # --- scalar types -----------------------------------------------------------------

    def gen_null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None

    def gen_boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def gen_integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = _int_bounds(schema)
        step = schema.get("multipleOf")
        if step is not None:
            step_d = Decimal(str(step))
            first = math.ceil(Decimal(low) / step_d)
            last = math.floor(Decimal(high) / step_d)
            for _ in range(_PATTERN_ATTEMPTS):
                candidate = Decimal(self.rng.randint(first, last)) * step_d
                if candidate == candidate.to_integral_value():
                    return int(candidate)
            raise ConfigurationError(f"no integer between {low} and {high} is a multiple of {step}")
        if low > high:
            raise ConfigurationError(f"no integer satisfies the bounds of {dict(schema)!r}")
        return self.rng.randint(low, high)

    def gen_number(self, schema: Mapping[str, Any], depth: int) -> float | int:
        low, high, low_open, high_open = _number_bounds(schema)
        step = schema.get("multipleOf")
        if step is not None:
            step_d = Decimal(str(step))
            first = math.ceil(Decimal(str(low)) / step_d)
            last = math.floor(Decimal(str(high)) / step_d)
            candidates = [k for k in (first, first + 1, last - 1, last) if first <= k <= last]
            self.rng.shuffle(candidates)
            for k in [self.rng.randint(first, last), *candidates] if first <= last else []:
                exact = Decimal(k) * step_d
                as_float = float(exact)
                if _within(as_float, low, high, low_open, high_open):
                    return int(exact) if exact == exact.to_integral_value() else as_float
            raise ConfigurationError(f"no number between {low} and {high} is a multiple of {step}")
        for _ in range(_PATTERN_ATTEMPTS):
            value = round(self.rng.uniform(low, high), 2)
            if _within(value, low, high, low_open, high_open):
                return value
        middle = (low + high) / 2
        if _within(middle, low, high, low_open, high_open):
            return middle
        raise ConfigurationError(f"no number satisfies the bounds of {dict(schema)!r}")

    def gen_string(self, schema: Mapping[str, Any], depth: int) -> str:
        min_length = int(schema.get("minLength", 0))
        max_length = schema.get("maxLength")
        pattern = schema.get("pattern")
        if pattern is not None:
            return self.pattern_string(str(pattern), min_length, max_length)
        fmt = schema.get("format")
        if fmt is not None and fmt in _FORMATS:
            return str(_FORMATS[fmt](self.rng))
        text = self.rng.choice(_WORDS)
        while len(text) < min_length:
            text += self.rng.choice(_WORDS)
        if max_length is not None:
            text = text[: max(int(max_length), min_length)]
        return text

    def pattern_string(self, pattern: str, min_length: int, max_length: Any) -> str:
        compiled = re.compile(pattern)
        tree = _RegexParser(pattern).parse()
        for _ in range(_PATTERN_ATTEMPTS):
            text = _render(tree, self.rng)
            fits = len(text) >= min_length and (max_length is None or len(text) <= max_length)
            if fits and compiled.search(text):
                return text
        raise ConfigurationError(
            f"could not generate a string matching pattern {pattern!r} with length "
            f"{min_length}..{max_length}; give the argument explicitly instead"
        )

    # --- containers -------------------------------------------------------------------

    def gen_object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            include = name in required or (depth < _MAX_DEPTH and self.rng.random() < 0.5)
            if include:
                out[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        wanted = int(schema.get("minProperties", 0))
        index = 0
        while len(out) < wanted:
            key = f"key{index}"
            index += 1
            if key not in out:
                out[key] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        return out

    def gen_array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix: list[Any] = list(schema.get("prefixItems") or ())
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        min_items = int(schema.get("minItems", 0))
        high = min_items if depth >= _MAX_DEPTH else max(min_items, len(prefix), 1) + 2
        if schema.get("maxItems") is not None:
            high = min(high, int(schema["maxItems"]))
        if items is False:
            high = min(high, len(prefix))
        # At least one item when allowed, so item schemas are exercised.
        count = self.rng.randint(min(max(min_items, 1), high), high)
        out: list[Any] = []
        unique = bool(schema.get("uniqueItems"))
        attempts = 0
        while len(out) < count:
            position = len(out)
            sub = prefix[position] if position < len(prefix) else items
            value = self.value(sub, depth + 1)
            attempts += 1
            if unique and value in out:
                if attempts > _PATTERN_ATTEMPTS * max(count, 1):
                    if len(out) >= min_items:
                        break
                    raise ConfigurationError(
                        f"could not generate {min_items} distinct items for {dict(schema)!r}"
                    )
                continue
            out.append(value)
        return out


def _infer_type(schema: Mapping[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _merge_all_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = sorted({*merged.get("required", ()), *value})
            else:
                merged[key] = value
    return merged


def _int_bounds(schema: Mapping[str, Any]) -> tuple[int, int]:
    low, high, low_open, high_open = _number_bounds(schema)
    low_int = math.floor(low) + 1 if low_open and low == math.floor(low) else math.ceil(low)
    high_int = math.ceil(high) - 1 if high_open and high == math.ceil(high) else math.floor(high)
    return int(low_int), int(high_int)


def _number_bounds(schema: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    low: float | None = schema.get("minimum")
    high: float | None = schema.get("maximum")
    low_open = high_open = False
    exclusive_min = schema.get("exclusiveMinimum")
    exclusive_max = schema.get("exclusiveMaximum")
    if isinstance(exclusive_min, bool):  # draft 4: a flag on "minimum"
        low_open = exclusive_min and low is not None
    elif exclusive_min is not None and (low is None or exclusive_min >= low):
        low, low_open = exclusive_min, True
    if isinstance(exclusive_max, bool):
        high_open = exclusive_max and high is not None
    elif exclusive_max is not None and (high is None or exclusive_max <= high):
        high, high_open = exclusive_max, True
    if low is None and high is None:
        low, high = 0, 100
    elif low is None:
        assert high is not None
        low = min(0, high - 100)
    elif high is None:
        high = max(100, low + 100)
    return float(low), float(high), low_open, high_open


def _within(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def _date_time(rng: random.Random) -> str:
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=rng.randrange(365 * 24 * 3600)
    )
    return moment.isoformat().replace("+00:00", "Z")


_FORMATS: dict[str, Any] = {
    "date-time": _date_time,
    "date": lambda rng: (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(365))).isoformat(),
    "time": lambda rng: f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
    "duration": lambda rng: f"PT{rng.randint(1, 59)}M",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "email": lambda rng: f"{rng.choice(_WORDS)}@example.com",
    "idn-email": lambda rng: f"{rng.choice(_WORDS)}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(_WORDS)}",
    "url": lambda rng: f"https://example.com/{rng.choice(_WORDS)}",
    "iri": lambda rng: f"https://example.com/{rng.choice(_WORDS)}",
    "uri-reference": lambda rng: f"/{rng.choice(_WORDS)}",
    "hostname": lambda rng: f"{rng.choice(_WORDS)}.example.com",
    "ipv4": lambda rng: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda rng: ":".join(f"{rng.getrandbits(16):x}" for _ in range(8)),
}


# --- a small regex subset: literals, escapes, classes, groups, alternation, quantifiers ---

_CLASS_ESCAPES = {
    "d": string.digits,
    "w": string.ascii_letters + string.digits + "_",
    "s": " ",
}
_UNBOUNDED_EXTRA = 3  # how many repetitions past the minimum "*", "+" and "{n,}" produce

Node = tuple[str, Any]


class _RegexParser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def unsupported(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            f"TestModel cannot generate strings for the regex {self.text!r} ({what} at "
            f"position {self.pos}); give the argument explicitly instead"
        )

    def parse(self) -> Node:
        node = self.alternation()
        if self.pos != len(self.text):
            raise self.unsupported(f"unexpected {self.text[self.pos]!r}")
        return node

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return ("alt", options) if len(options) > 1 else options[0]

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.pos < len(self.text) and self.peek() not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return ("seq", items)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def atom(self) -> Node:
        char = self.text[self.pos]
        self.pos += 1
        if char in "^$":
            return ("seq", [])
        if char == ".":
            return ("set", string.ascii_letters + string.digits)
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.unsupported("a lookaround or named group")
            node = self.alternation()
            if self.peek() != ")":
                raise self.unsupported("an unclosed group")
            self.pos += 1
            return node
        if char == "[":
            return ("set", self.char_class())
        if char == "\\":
            return self.escape()
        return ("lit", char)

    def escape(self) -> Node:
        char = self.peek()
        self.pos += 1
        if char in _CLASS_ESCAPES:
            return ("set", _CLASS_ESCAPES[char])
        if char.isalnum():
            raise self.unsupported(f"the escape \\{char}")
        return ("lit", char)

    def char_class(self) -> str:
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        chars: list[str] = []
        first = True
        while self.pos < len(self.text) and (self.peek() != "]" or first):
            first = False
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.text[self.pos]
                self.pos += 1
                chars.extend(_CLASS_ESCAPES.get(escaped, escaped))
                continue
            after_dash = self.text[self.pos + 1 : self.pos + 2]
            is_range = self.peek() == "-" and after_dash not in ("", "]")
            if is_range:
                end = self.text[self.pos + 1]
                self.pos += 2
                chars.extend(chr(c) for c in range(ord(char), ord(end) + 1))
            else:
                chars.append(char)
        if self.peek() != "]":
            raise self.unsupported("an unclosed character class")
        self.pos += 1
        if negate:
            excluded = set(chars)
            return "".join(c for c in string.ascii_letters + string.digits if c not in excluded)
        return "".join(dict.fromkeys(chars))

    def quantified(self, atom: Node) -> Node:
        char = self.peek()
        if char == "?":
            low, high = 0, 1
        elif char == "*":
            low, high = 0, _UNBOUNDED_EXTRA
        elif char == "+":
            low, high = 1, 1 + _UNBOUNDED_EXTRA
        elif char == "{":
            match = re.match(r"\{(\d*)(,?)(\d*)\}", self.text[self.pos :])
            if match is None:
                return atom
            low = int(match.group(1) or 0)
            if not match.group(2):
                high = low
            else:
                high = int(match.group(3)) if match.group(3) else low + _UNBOUNDED_EXTRA
            self.pos += match.end() - 1
        else:
            return atom
        self.pos += 1
        if self.peek() in "?+":  # lazy / possessive modifiers change nothing here
            self.pos += 1
        return ("rep", (atom, low, high))


def _render(node: Node, rng: random.Random) -> str:
    kind, data = node
    if kind == "lit":
        return str(data)
    if kind == "set":
        return rng.choice(data) if data else ""
    if kind == "seq":
        return "".join(_render(child, rng) for child in data)
    if kind == "alt":
        return _render(rng.choice(data), rng)
    atom, low, high = data
    return "".join(_render(atom, rng) for _ in range(rng.randint(low, high)))
