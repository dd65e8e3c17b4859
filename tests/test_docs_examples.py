"""Run the ```python code blocks of every docs/*.md page, so the docs cannot rot.

The blocks of one page run in order in one namespace (a later block may use what an
earlier one defined), in a temporary working directory, under the agentkit pytest
plugin's block on real model requests. Top-level ``await`` is allowed. A block that
needs a real network or API key opts out with ```python {test="skip"}; keep those rare.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^```python(?P<options>[^\n]*)\n(?P<code>.*?)^```\s*$", re.M | re.S)
_SKIP = re.compile(r"""test\s*=\s*["']skip["']""")


@dataclass(frozen=True)
class Block:
    """One ```python block: where it starts and its code."""

    line: int
    code: str
    skip: bool


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown page, with their 1-based starting line."""
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append(Block(line, match.group("code"), bool(_SKIP.search(match["options"]))))
    return blocks


def run_block(block: Block, page: Path, namespace: dict[str, Any]) -> None:
    """Execute ``block`` in ``namespace``; line numbers in tracebacks match the page."""
    source = "\n" * (block.line - 1) + block.code
    # dont_inherit: this file's `from __future__ import annotations` must not leak in.
    code = compile(
        source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    outcome = eval(code, namespace)
    if inspect.iscoroutine(outcome):
        async def finish() -> None:
            await outcome

        anyio.run(finish)


# Pages without runnable examples (tables, prose) have nothing to execute.
PAGES = [
    page
    for page in sorted(DOCS.glob("*.md"))
    if any(not b.skip for b in python_blocks(page.read_text(encoding="utf-8")))
]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runnable = [b for b in python_blocks(page.read_text(encoding="utf-8")) if not b.skip]
    monkeypatch.chdir(tmp_path)
    # Constructing a model works; a request to a real server is blocked by the plugin.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-placeholder-not-a-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # A real module, so dataclasses, pickling and typing can look the page's names up.
    module = types.ModuleType(f"_docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in runnable:
        run_block(block, page, module.__dict__)


def test_block_extraction_and_skip_marker() -> None:
    text = (
        "intro\n```python\nx = 1\n```\n\n```python {test=\"skip\"}\nnetwork()\n```\n"
        "```text\nnot code\n```\n```python\ny = x + 1\n```\n"
    )
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (3, "x = 1\n", False),
        (7, "network()\n", True),
        (13, "y = x + 1\n", False),
    ]
    namespace: dict[str, Any] = {}
    for block in blocks:
        if not block.skip:
            run_block(block, Path("page.md"), namespace)
    assert namespace["y"] == 2


def test_top_level_await_and_page_line_numbers() -> None:
    namespace: dict[str, Any] = {}
    run_block(Block(1, "import anyio\nawait anyio.sleep(0)\nz = 3\n", False), Path("p.md"),
              namespace)
    assert namespace["z"] == 3
    with pytest.raises(ZeroDivisionError) as info:
        run_block(Block(40, "1 / 0\n", False), Path("p.md"), {})
    assert info.traceback[-1].lineno + 1 == 40
