"""Run every ```python block of README.md and docs/*.md as written, so the docs cannot rot.

Rules for doc authors:

1. A page's ```python blocks, in order, are one script: each runs in the namespace the
   earlier ones built, in a fresh temporary directory. Top-level ``await`` is a
   SyntaxError, as in a real script: wrap async code in ``async def main()`` and
   ``asyncio.run(main())``.
2. What a page shows as printed is checked against what the code really prints:
   - a ```text block that follows a ```python block with nothing but blank lines between
     is everything that block prints;
   - ``print(x)  # -> text`` is what the print calls on that line print.
   A trailing comment on a line that calls ``print`` must be such a ``# ->`` comment.
   ``...`` in expected text stands for any text (ids, ports, timings, long values);
   trailing spaces and leading/trailing blank lines are ignored.
3. ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` point at a FakeOpenAIServer (real HTTP on
   127.0.0.1), so ``model="gpt-4o-mini"`` works offline; what it answers for a page is
   :data:`FAKE_REPLIES` below, and every reply listed there must be used.
   ``AZURE_OPENAI_API_KEY`` holds a dummy key; ``HOME`` is a temporary directory where
   ``~/models/*.gguf`` paths shown on a page exist (as links to the bundled model).
4. ```python title="name.py" also saves the block as that file (other blocks can import
   it). A title naming a ``test_*.py`` file marks a pytest file: it is saved, not executed
   in the page; pytest runs it in a subprocess with ``--agentkit-record`` (the fake server
   standing in for OpenAI, answering :data:`RECORD_REPLIES`) and, when that recorded
   cassettes, once more offline with no key and no base URL: every test must pass.
5. There is no way to leave a block out: a block that cannot run here does not belong on
   a page as runnable code (show it as ```text, or make it runnable with the fake server).
6. Blocks that use the offline model (``model="local"``) are slow: keep them few.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tokenize
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentkit.testing import FakeOpenAIServer
from agentkit.testing.fake_openai import Reply, text_reply, tool_call_reply

ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(
    r"^```(?P<lang>[\w-]*)(?P<options>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S
)
_OPTION = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')
_ELLIPSIS = "..."

_WEATHER_IN_PARIS = [
    tool_call_reply(("get_weather", {"city": "Paris"})),
    text_reply("It is 14°C with light rain in Paris."),
]
#: What the FakeOpenAIServer behind OPENAI_BASE_URL answers, per page, in order.
FAKE_REPLIES: dict[str, list[Reply]] = {
    "README.md": _WEATHER_IN_PARIS,
    "index.md": _WEATHER_IN_PARIS,
    "mcp.md": [
        tool_call_reply(("weather_get_forecast", {"city": "Paris"})),
        text_reply("Tomorrow in Paris: 18°C and sunny."),
    ],
    "safety.md": [
        tool_call_reply(("fetch_page", {"url": "https://example.com"})),
        text_reply("The page greets visitors and then tries to give instructions, which I "
                   "ignored."),
        text_reply("Hello! How can I help?", usage={"prompt_tokens": 1000,
                                                    "completion_tokens": 200}),
        text_reply("4"),
        text_reply("Hello!"),
    ],
    "responses.md": [*_WEATHER_IN_PARIS, text_reply("Hello!")],
}
#: What the fake server answers while a page's pytest files record their cassettes.
RECORD_REPLIES: dict[str, list[Reply]] = {
    "testing.md": [text_reply("It is 14°C in Paris.")],
}


@dataclass(frozen=True)
class Block:
    """One ```python block: its 1-based first code line, code, options and shown output."""

    line: int
    code: str
    options: dict[str, str] = field(default_factory=dict)
    output: str | None = None

    @property
    def title(self) -> str | None:
        """The file name the block is saved as, if any."""
        return self.options.get("title")

    @property
    def is_test_file(self) -> bool:
        """Whether the block is a pytest file, run by pytest instead of in the page."""
        return self.title is not None and Path(self.title).name.startswith("test_")


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown page, each with the ```text output that directly
    follows it (blank lines only in between), if any."""
    fences = list(_FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        if fence["lang"] != "python":
            continue
        options = dict(_OPTION.findall(fence["options"]))
        unknown = sorted(set(options) - {"title"})
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} on a python block: every block runs "
                'as written; the only option is title="file.py"'
            )
        after = fences[i + 1] if i + 1 < len(fences) else None
        output = None
        if after and after["lang"] == "text" and not text[fence.end() : after.start()].strip():
            output = after["code"]
        line = text.count("\n", 0, fence.start("code")) + 1
        blocks.append(Block(line, fence["code"], options, output))
    return blocks


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected``, where ``...`` stands for any text; trailing
    spaces and surrounding blank lines do not count."""

    def tidy(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")

    pattern = ".*?".join(re.escape(part) for part in tidy(expected).split(_ELLIPSIS))
    return re.fullmatch(pattern, tidy(actual), re.S) is not None


def expected_prints(code: str, first_line: int) -> dict[int, str]:
    """``{page line: expected text}`` from ``# -> text`` comments.

    Raises:
        ValueError: A line calling ``print`` has another kind of trailing comment: say
            what it prints with ``# ->``, or put the prose on its own line.
    """
    calls: set[int] = set()
    comments: dict[int, str] = {}
    previous: tokenize.TokenInfo | None = None
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        row = token.start[0] + first_line - 1
        if token.type == tokenize.COMMENT and previous and previous.start[0] == token.start[0]:
            comments[row] = token.string[1:].strip()
        if previous and previous.string == "print" and token.string == "(":
            calls.add(row)
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = token
    expected = {}
    for row, comment in comments.items():
        if comment.startswith("->"):
            expected[row] = comment[2:].strip()
        elif row in calls:
            raise ValueError(
                f"line {row} calls print with the comment {comment!r}: write what it prints "
                "as '# -> text' (... for parts that vary) or move the comment to its own line"
            )
    return expected


class _PrintRecorder(io.StringIO):
    """stdout that remembers which line of the page wrote each piece of text."""

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.filename = filename
        self.by_line: dict[int, list[str]] = {}

    def write(self, text: str) -> int:
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename != self.filename:
            frame = frame.f_back
        if frame is not None:
            self.by_line.setdefault(frame.f_lineno, []).append(text)
        return super().write(text)


def run_block(block: Block, page: Path, namespace: dict[str, Any]) -> None:
    """Execute ``block`` as script code in ``namespace`` and check what it prints.

    Line numbers in tracebacks and messages are the page's.
    """
    where = f"{page.name}:{block.line}"
    try:
        expected = expected_prints(block.code, block.line)
    except ValueError as exc:
        raise AssertionError(f"{page.name}: {exc}") from None
    try:
        # dont_inherit: this file's `from __future__ import annotations` must not leak in.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec",
                       dont_inherit=True)
    except SyntaxError as exc:
        if "outside" in str(exc.msg) and ("await" in exc.msg or "async" in exc.msg):
            raise AssertionError(
                f"{page.name}:{exc.lineno}: top-level await fails in a script; wrap the "
                "code in `async def main(): ...` and call `asyncio.run(main())`"
            ) from exc
        raise
    recorder = _PrintRecorder(str(page))
    try:
        with contextlib.redirect_stdout(recorder):
            exec(code, namespace)
    finally:
        sys.stdout.write(recorder.getvalue())  # shown by pytest when the test fails
    printed = recorder.getvalue()
    if block.output is not None and not output_matches(block.output, printed):
        raise AssertionError(
            f"{where}: the page shows this output:\n{block.output}\nbut the block printed:\n"
            f"{printed}"
        )
    for row, text in expected.items():
        actual = "".join(recorder.by_line.get(row, []))
        if not output_matches(text, actual):
            raise AssertionError(
                f"{page.name}:{row}: the page says this prints {text!r}, it printed {actual!r}"
            )


def run_test_file(path: Path, cwd: Path, server: FakeOpenAIServer) -> None:
    """Run the pytest file ``path`` recording its cassettes against ``server``, then, if it
    recorded any, again offline with no key and no base URL, replaying them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(ROOT), env.get("PYTHONPATH", "")])
    online = {**env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": server.api_key}
    for run_env, extra in ((online, ["--agentkit-record"]), (env, [])):
        if run_env is env:
            assert server.pending == 0, f"{server.pending} RECORD_REPLIES were never asked for"
            server.stop()  # offline means offline
            if not any(cwd.rglob("cassettes/*.jsonl")):
                break  # nothing to replay: the offline run would repeat the first
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(path.relative_to(cwd)), *extra],
            cwd=cwd, env=run_env, capture_output=True, text=True, timeout=300, check=False,
        )
        if done.returncode != 0 or " passed" not in done.stdout:
            raise AssertionError(
                f"pytest {path.name} {' '.join(extra)} failed:\n{done.stdout}\n{done.stderr}"
            )


def _save(block: Block, directory: Path) -> None:
    target = directory / str(block.title)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.code, encoding="utf-8")


def _link_models_into_home(page_text: str, home: Path) -> None:
    # Paths like ~/models/X.gguf on a page stand for a model the reader downloaded;
    # the bundled one takes their place (LocalModel only loads on the first request).
    from agentkit.model_store import model_path

    for name in set(re.findall(r"~/(models/[\w.-]+\.gguf)", page_text)):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(model_path())


def _pages() -> list[Path]:
    return [p for p in PAGE_FILES if python_blocks(p.read_text(encoding="utf-8"))]


PAGES = _pages()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    from agentkit.model_store import cache_dir

    # The offline model stays where it was pulled, whatever HOME is.
    monkeypatch.setenv("AGENTKIT_HOME", str(cache_dir().parent))
    monkeypatch.setenv("HOME", str(home))
    _link_models_into_home(text, home)
    monkeypatch.chdir(work)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-docs-placeholder-not-a-key")
    # A real module, so dataclasses, pickling and typing can look the page's names up.
    module = types.ModuleType(f"_docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with FakeOpenAIServer(FAKE_REPLIES.get(page.name, [])) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
        for block in blocks:
            if block.title:
                _save(block, work)
            if not block.is_test_file:  # test_docs_pytest_file runs those
                run_block(block, page, module.__dict__)
        assert server.pending == 0, (
            f"{page.name}: {server.pending} of the fake server's replies for this page were "
            "never asked for; update FAKE_REPLIES in tests/test_docs_examples.py"
        )


TEST_FILES = [
    pytest.param(page, block, id=f"{page.name}:{block.title}")
    for page in PAGES
    for block in python_blocks(page.read_text(encoding="utf-8"))
    if block.is_test_file
]


@pytest.mark.parametrize("page,block", TEST_FILES)
def test_docs_pytest_file_passes_recorded_and_offline(
    page: Path, block: Block, tmp_path: Path
) -> None:
    for earlier in python_blocks(page.read_text(encoding="utf-8")):
        if earlier.title and earlier.line <= block.line:
            _save(earlier, tmp_path)
    with FakeOpenAIServer(RECORD_REPLIES.get(page.name, [])) as server:
        run_test_file(tmp_path / str(block.title), tmp_path, server)


# -- the harness itself


def test_blocks_options_and_output_blocks() -> None:
    text = (
        "intro\n```python\nprint(1)\n```\n\n```text\n1\n```\n"
        "```python\nnetwork()\n```\n"
        "prose\n```text\nnot output\n```\n"
        '```python title="tests/test_x.py"\ny = 2\n```\n'
    )
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.output, b.title) for b in blocks] == [
        (3, "print(1)\n", "1\n", None),
        (10, "network()\n", None, None),
        (17, "y = 2\n", None, "tests/test_x.py"),
    ]
    assert blocks[2].is_test_file and not blocks[0].is_test_file
    with pytest.raises(ValueError, match=r"unknown option.*test.*every block runs"):
        python_blocks('```python {test="skip" reason="needs a GPU"}\nx\n```\n')


def test_blocks_run_as_a_script_with_page_line_numbers() -> None:
    namespace: dict[str, Any] = {}
    run_block(Block(1, "import asyncio\nasync def f():\n    return 3\nz = asyncio.run(f())\n"),
              Path("p.md"), namespace)
    assert namespace["z"] == 3
    with pytest.raises(AssertionError, match=r"p\.md:2: top-level await fails in a script"):
        run_block(Block(1, "import asyncio\nawait asyncio.sleep(0)\n"), Path("p.md"), {})
    with pytest.raises(ZeroDivisionError) as info:
        run_block(Block(40, "1 / 0\n"), Path("p.md"), {})
    assert info.traceback[-1].lineno + 1 == 40


def test_printed_output_is_checked() -> None:
    page = Path("p.md")
    run_block(Block(5, "print('id 42 ok')\n", output="id ... ok\n"), page, {})
    with pytest.raises(AssertionError, match="the page shows this output"):
        run_block(Block(5, "print('id 42 ok')\n", output="id 43 ok\n"), page, {})
    code = "for i in range(2):\n    print(i)  # -> 0...\nprint('port 8123')  # -> port ...\n"
    run_block(Block(10, code), page, {})
    with pytest.raises(AssertionError, match=r"p\.md:11: the page says this prints '2'"):
        run_block(Block(10, "x = 1\nprint(x + 2)  # -> 2\n"), page, {})
    with pytest.raises(ValueError, match=r"line 3 calls print with the comment 'e\.g\. 3'"):
        expected_prints("x = 1\nprint(x + 2)  # e.g. 3\n", 2)
    # Prose comments on other lines, and '->' inside strings, are not expectations.
    assert expected_prints("y = 1  # one\nprint('-> x')  # -> -> x\n", 1) == {2: "-> x"}


def test_output_matching_rules() -> None:
    assert output_matches("a ... c", "a b\nb c")
    assert output_matches("\nline  \n", "line\n\n")
    assert not output_matches("a", "a b")
    assert output_matches("{...}", "{'x': 1}") and not output_matches("{...}", "[1]")
