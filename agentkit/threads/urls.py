"""Store URLs: one string (a command-line option, an environment variable) names a store."""

from __future__ import annotations

import re

from agentkit.errors import ConfigurationError
from agentkit.threads._records import Store

__all__ = ["store_from_url"]

_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, a file path ending in .db, "
    "or postgresql://user@host:5432/dbname"
)


def store_from_url(url: str) -> Store:
    """The store a URL names.

    - ``sqlite:///path.db`` (relative to the current directory), ``sqlite:////abs/path.db``
      or a plain path ending in ``.db``, ``.sqlite`` or ``.sqlite3``:
      :class:`~agentkit.threads.SQLiteStore` (the file is created if missing).
    - ``postgresql://…`` or ``postgres://…``: :class:`~agentkit.threads.PostgresStore`
      (extra ``postgres``).

    Raises:
        ConfigurationError: any other string; the message lists the accepted forms.
    """
    text = url.strip() if isinstance(url, str) else ""
    if text.startswith(("postgresql://", "postgres://")):
        from agentkit.threads.postgres import PostgresStore

        return PostgresStore(text)
    path = text[len("sqlite:///"):] if text.startswith("sqlite:///") else None
    if path is None and "://" not in text and text.endswith((".db", ".sqlite", ".sqlite3")):
        path = text
    if path:
        from agentkit.threads.sqlite import SQLiteStore

        return SQLiteStore(path)
    raise ConfigurationError(f"unknown store URL {_shown(url)}: use {_FORMS}")


def _shown(url: object) -> str:
    """``url`` for an error message, without a password it may carry (``user:pw@``)."""
    if not isinstance(url, str):
        return f"(a {type(url).__name__}, not a string)"
    return repr(re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url))
