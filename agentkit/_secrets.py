"""Redaction of API keys from text that may be shown or stored (errors, logs, cassettes)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact"]

# OpenAI-style keys ("sk-..."), kept recognisable by their first two characters.
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-*]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` (4 characters or more) and anything shaped like an
    OpenAI key replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERN.sub(r"\1***", text)
