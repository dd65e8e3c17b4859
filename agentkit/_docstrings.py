"""Docstring → tool description and per-parameter descriptions.

Parsing goes through ``docstring-parser`` (Google, NumPy, reST/Sphinx, Epydoc). Two things
are done on top of it:

* The style is detected with a few cheap checks instead of ``docstring_parser.parse``'s
  "try every parser" auto mode, which costs most of the decoration budget.
* Google ``Keyword Args:`` / ``Keyword Arguments:`` / ``Other Parameters:`` sections are
  registered as parameter sections; the stock Google parser silently drops them.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import docstring_parser
from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

__all__ = ["ParsedDocstring", "parse_docstring"]

_EXTRA_GOOGLE_PARAM_SECTIONS = (
    "Keyword Args",
    "Keyword Arguments",
    "Kwargs",
    "Other Parameters",
    "Other Params",
    "Other Args",
    "Other Arguments",
)

_GOOGLE = GoogleParser(
    [
        *DEFAULT_SECTIONS,
        *(Section(title, "param", SectionType.MULTIPLE) for title in _EXTRA_GOOGLE_PARAM_SECTIONS),
    ]
)

_REST = re.compile(r"^\s*:(param|parameter|arg|argument|key|keyword|type|returns?|raises?)\b", re.M)
_EPYDOC = re.compile(r"^\s*@(param|type|return|rtype|raise)\b", re.M)
_NUMPY = re.compile(r"^\s*[A-Z][A-Za-z ]*\n\s*-{3,}\s*$", re.M)
_PARAGRAPH = re.compile(r"\n\s*\n")
_GOOGLE_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$", re.M)


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    """What a tool needs from a docstring.

    Attributes:
        description: Summary and long description, joined by a blank line.
        params: Parameter name → description (only documented, non-empty ones).
    """

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _detect(text: str) -> docstring_parser.DocstringStyle | None:
    """Pick the docstring style from its markers; None means "plain prose"."""
    if _REST.search(text):
        return docstring_parser.DocstringStyle.REST
    if _EPYDOC.search(text):
        return docstring_parser.DocstringStyle.EPYDOC
    if _NUMPY.search(text):
        return docstring_parser.DocstringStyle.NUMPYDOC
    if _GOOGLE_HEADER.search(text):
        return docstring_parser.DocstringStyle.GOOGLE
    return None


def _clean(text: str) -> str:
    """Unwrap hard-wrapped lines of a parameter description, keeping paragraph breaks."""
    paragraphs = (" ".join(part.split()) for part in _PARAGRAPH.split(text.strip()))
    return "\n\n".join(p for p in paragraphs if p)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Parse ``doc`` (any supported style, auto-detected) into description and params.

    ``Returns:``, ``Raises:``, ``Examples:`` and similar sections never reach the
    description. A docstring without any section markers is all description.
    """
    if not doc or not doc.strip():
        return ParsedDocstring()
    text = inspect.cleandoc(doc)
    style = _detect(text)
    if style is None:
        return ParsedDocstring(description=text)
    try:
        if style is docstring_parser.DocstringStyle.GOOGLE:
            parsed = _GOOGLE.parse(text)
        else:
            parsed = docstring_parser.parse(text, style)
    except docstring_parser.ParseError:
        # A malformed section should not make the function unusable as a tool: fall back
        # to the library's own detection, and to plain prose if that fails too.
        try:
            parsed = docstring_parser.parse(text)
        except docstring_parser.ParseError:
            return ParsedDocstring(description=text)
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    params: dict[str, str] = {}
    for param in parsed.params:
        # Google "name (type):" and NumPy "name : type" both leave a bare name here, but
        # a "*args"/"**kwargs" entry keeps its stars; strip them so lookups by name work.
        name = param.arg_name.lstrip("*")
        if param.description and name not in params:
            params[name] = _clean(param.description)
    return ParsedDocstring(description="\n\n".join(parts), params=params)
