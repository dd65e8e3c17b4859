"""Redaction of API keys from text that may be shown or stored (errors, logs, cassettes)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact"]

_PATTERNS = (
    # OpenAI-style keys ("sk-..."), kept recognisable by their first two characters.
    (re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-*]{6,}"), r"\1***"),
    # "Bearer <token>": a token has a digit, which keeps "Bearer authentication" intact.
    (re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z._~+/-]*\d)[A-Za-z0-9._~+/-]{8,}=*"), r"\1***"),
    # api_key=..., "api_key": "...", X-Api-Key: ... (also inside JSON-encoded text, hence
    # the optional backslashes; a backslash never ends up in the replaced value, so JSON
    # text stays valid).
    (
        re.compile(
            r"(?i)(?<![A-Za-z0-9])((?:api[_-]?key|access[_-]?token|auth[_-]?token"
            r"|client[_-]?secret|secret[_-]?key)\\?['\"]?\s*[:=]\s*\\?['\"]?)"
            r"[^\s'\"\\&,;<>]{8,}"
        ),
        r"\1***",
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` (4 characters or more) and anything shaped like an
    API key (``sk-...``, ``Bearer <token>``, ``api_key=...``) replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
