"""The ``agentkit`` command: chat with a model, run one prompt, manage offline models.

``agentkit chat`` is an interactive REPL with streamed answers and live tool calls;
``agentkit run module:agent "prompt"`` runs an :class:`~agentkit.Agent` from your code;
``agentkit models pull|list`` delegates to :mod:`agentkit.model_store`. ``python -m
agentkit`` is the same command. Heavy imports (``openai``, llama.cpp) happen only when a
model is used, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from agentkit._version import __version__
from agentkit.agent import Agent, resolve_model
from agentkit.errors import AgentkitError
from agentkit.messages import Message, ToolCall
from agentkit.models.base import Model, TextDelta
from agentkit.models.openai import OpenAIChatModel
from agentkit.run import ModelResponseFinished, RunFinished, ToolCallStarted, ToolResultReceived
from agentkit.settings import ModelSettings
from agentkit.tools import Tool
from agentkit.usage import Usage

__all__ = ["CLIError", "ChatSession", "build_parser", "load_object", "main"]

DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
_TOOLS_HINT = " Use the tools when they help you answer."
# Long tool results would flood the terminal; /history shows them whole.
_RESULT_PREVIEW = 200

_MAIN_EXAMPLES = """\
examples:
  agentkit chat                      chat (OpenAI if OPENAI_API_KEY is set, else offline)
  agentkit chat --model local --tools examples/weather_bot.py:get_weather
  agentkit run myapp.agents:support_agent "Where is my order 42?"
  agentkit models pull               fetch the offline model (98 MB, once)
"""

_CHAT_EXAMPLES = """\
examples:
  agentkit chat
  agentkit chat --model gpt-4o --instructions "Answer in French."
  agentkit chat --model local --tools examples/weather_bot.py:get_weather
  agentkit chat --tools myapp.tools:search myapp.tools:fetch_page
  OPENAI_BASE_URL=http://localhost:11434/v1 agentkit chat --model llama3.2

in the chat:
  /reset     forget the conversation          /history  show the conversation
  /usage     tokens and requests so far        /help     this list
  Ctrl-C     stop the current answer (the conversation is kept)
  Ctrl-D     quit

Without --model the chat uses gpt-4o-mini when OPENAI_API_KEY is set (or $AGENTKIT_MODEL),
else the offline model "local". With the offline model and tools, each message starts with
--tool-choice required (the small model rarely decides to call a tool on its own); the
answer follows once the tool has run.
"""

_RUN_EXAMPLES = """\
examples:
  agentkit run myapp.agents:agent "Summarise today's tickets"
  agentkit run examples/structured_output.py:agent "Ada Lovelace, born 1815" --json
  agentkit run myapp.agents:agent "Hello" --model local

TARGET is module:attribute (imported from the current directory) or path/to/file.py:attribute;
the attribute must be an agentkit.Agent. Without --json the output is printed alone (JSON for
structured output types); --json prints the whole result: output, messages, usage, turns.
"""

_MODELS_HELP = """\
usage: agentkit models {pull,list,path} ...

Manage the offline models used by model="local".

commands:
  pull [NAME] [--force]   download and verify a model (default smollm2-135m) into the cache
  list                    show the models in the cache
  path                    print the cache directory ($AGENTKIT_HOME/models or ~/.cache/agentkit)

examples:
  agentkit models pull
  agentkit models list
"""


class CLIError(Exception):
    """A usage problem the command reports in one line (bad target, unknown attribute...)."""


# --- argument parsing -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``agentkit`` argument parser (``models`` arguments are parsed by model_store)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="agentkit",
        description="Build, run and chat with tool-using agents.",
        epilog=_MAIN_EXAMPLES,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"agentkit {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log more (-v: info, -vv: debug) to stderr",
    )
    sub = parser.add_subparsers(dest="command", metavar="{chat,run,models}")

    chat = sub.add_parser(
        "chat", help="chat with a model in the terminal", epilog=_CHAT_EXAMPLES,
        description="An interactive chat with streamed answers and live tool calls.",
        formatter_class=raw,
    )
    chat.add_argument("-m", "--model", help='model name, e.g. gpt-4o-mini, or "local"')
    chat.add_argument(
        "-t", "--tools", nargs="+", action="extend", default=[], metavar="MODULE:ATTR",
        help="tools to offer: a tool, a function or a list of them (repeatable)",
    )
    chat.add_argument("-i", "--instructions", help="the system prompt")
    chat.add_argument(
        "--tool-choice", metavar="CHOICE",
        help='"auto", "required", "none" or a tool name (see below for the default)',
    )
    chat.add_argument("--no-color", action="store_true", help="plain output (also: NO_COLOR=1)")

    run = sub.add_parser(
        "run", help="run one prompt against an Agent from your code", epilog=_RUN_EXAMPLES,
        description="Run an agent defined in your code on one prompt and print its output.",
        formatter_class=raw,
    )
    run.add_argument("target", metavar="TARGET", help="module:agent or path/to/file.py:agent")
    run.add_argument("prompt", help="the user's message")
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("-m", "--model", help="use this model instead of the agent's")

    models = sub.add_parser("models", help="pull and list offline models", add_help=False)
    models.add_argument("models_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentkit`` command with ``argv`` (default ``sys.argv[1:]``); return its
    exit code: 0 success, 1 a run or model error, 2 a usage error, 130 interrupted."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["models"]:
        # Before argparse, which would take "models --help" as its own --help.
        return _models(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    with _logging_to_stderr(args.verbose):
        return _command(parser, args)


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "models":
        return _models(args.models_args)
    try:
        if args.command == "chat":
            return _chat(args)
        if args.command == "run":
            return _run(args)
    except CLIError as exc:
        print(f"agentkit: error: {exc}", file=sys.stderr)
        return 2
    except AgentkitError as exc:
        print(f"agentkit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    parser.print_help()
    return 2


def _models(rest: list[str]) -> int:
    if not rest or rest[0] in ("-h", "--help"):
        sys.stdout.write(_MODELS_HELP)
        return 0 if rest else 2
    from agentkit.model_store import main as models_main

    return models_main(rest)


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Iterator[None]:
    """With -v (INFO: requests, tool calls, timings) or -vv (DEBUG), print the "agentkit"
    logger on stderr for the duration of the command, then restore it (``main`` can be
    called more than once in a process)."""
    if not verbosity:
        yield
        return
    logger = logging.getLogger("agentkit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s agentkit %(levelname)s: %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- loading user code ------------------------------------------------------------------


def load_object(target: str) -> Any:
    """Import ``module:attr`` (dotted attribute paths allowed) or ``file.py:attr``.

    Modules are imported from the current directory, like ``python -m`` does.
    """
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise CLIError(
            f"expected MODULE:ATTRIBUTE (e.g. myapp.agents:agent) or FILE.py:ATTRIBUTE, "
            f"got {target!r}"
        )
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    if not is_file:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
    try:
        module = _import_file(Path(where)) if is_file else importlib.import_module(where)
    except CLIError:
        raise
    except ModuleNotFoundError as exc:
        if is_file or exc.name is None or not where.startswith(exc.name):
            raise CLIError(_import_failure(where, exc)) from None
        raise CLIError(
            f"cannot import {where!r} (no module named {exc.name!r}); run from the "
            "directory that contains it, or give a file path: path/to/file.py:attr"
        ) from None
    except Exception as exc:  # the user's module failed while running: say where, briefly
        raise CLIError(_import_failure(where, exc)) from None
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            names = ", ".join(n for n in sorted(vars(module)) if not n.startswith("_"))
            raise CLIError(f"{where!r} has no attribute {attr!r}; it defines: {names}") from None
    return value


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise CLIError(f"no such file: {str(path)!r}")
    name = "_agentkit_cli_" + path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so dataclasses and pydantic can resolve the module.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_failure(where: str, exc: Exception) -> str:
    """One line naming the file and line where importing ``where`` failed, and why."""
    if isinstance(exc, SyntaxError):
        filename, line, why = exc.filename, exc.lineno, f"{type(exc).__name__}: {exc.msg}"
    else:
        # The innermost module-level frame is the import statement or line that failed,
        # in the target or in a module it imports; deeper frames are library internals.
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.name == "<module>"]
        filename, line = (frames[-1].filename, frames[-1].lineno) if frames else (where, None)
        why = f"{type(exc).__name__}: {exc}"
    return (f"cannot import {where!r} ({filename}, line {line}): {' '.join(why.split())}; "
            "fix that line and retry")


def load_tools(targets: Sequence[str]) -> list[Tool[Any, Any] | Callable[..., Any]]:
    """Load each ``--tools`` target: a Tool, a plain function, or a list/tuple of them."""
    tools: list[Tool[Any, Any] | Callable[..., Any]] = []
    for target in targets:
        value = load_object(target)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not (isinstance(item, Tool) or callable(item)) or isinstance(item, type):
                raise CLIError(
                    f"{target!r} is a {type(item).__name__}, not a tool or a function"
                )
            tools.append(item)
    return tools


# --- agentkit run -----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    agent = load_object(args.target)
    if not isinstance(agent, Agent):
        raise CLIError(
            f"{args.target!r} is a {type(agent).__name__}, not an agentkit.Agent"
        )
    result = agent.run_sync(args.prompt, model=args.model)
    if args.json:
        from pydantic_core import to_jsonable_python

        document = {
            "output": to_jsonable_python(result.output),
            "messages": result.to_openai(),
            "usage": to_jsonable_python(result.usage),
            "turns": result.turns,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    elif isinstance(result.output, str):
        print(result.output)
    else:
        from pydantic_core import to_jsonable_python

        print(json.dumps(to_jsonable_python(result.output), indent=2, ensure_ascii=False))
    return 0


# --- agentkit chat ----------------------------------------------------------------------


def _is_local(model: Model) -> bool:
    # Checked through sys.modules so that an OpenAI chat never imports the llama.cpp side.
    local = sys.modules.get("agentkit.models.local")
    return local is not None and isinstance(model, local.LocalModel)


def _chat(args: argparse.Namespace) -> int:
    tools = load_tools(args.tools)
    model = resolve_model(args.model)
    if isinstance(model, OpenAIChatModel):
        model.require_key()  # before the first prompt, not after the first message
    tool_choice = args.tool_choice
    if tool_choice is None and tools and _is_local(model):
        tool_choice = "required"
    agent: Agent[str] = Agent(
        name="chat",
        instructions=args.instructions or DEFAULT_INSTRUCTIONS + (_TOOLS_HINT if tools else ""),
        model=model,
        tools=tools,
        settings=ModelSettings(tool_choice=tool_choice),
    )
    color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    session = ChatSession(agent, out=sys.stdout, color=color)
    return session.repl()


class ChatSession:
    """One terminal conversation with an agent: commands, streamed turns, history, usage.

    Turns run on one event loop in a background thread for the whole session (so a
    model's HTTP connections are reused), while the main thread reads input and receives
    Ctrl-C, which cancels the running turn and leaves the conversation as it was before it.
    """

    def __init__(self, agent: Agent[str], *, out: TextIO, color: bool = False) -> None:
        self.agent = agent
        self.out = out
        self.color = color
        self.history: list[Message] = []
        self.usage = Usage()
        self._in_text = False

    # output helpers

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _end_text(self) -> None:
        if self._in_text:
            self._write("\n")
            self._in_text = False

    def banner(self) -> None:
        """Print which model and tools the session uses."""
        tools = ", ".join(t.name for t in self.agent.tools) or "none"
        self._write(
            f"agentkit {__version__} chat with {self.agent.model.name} (tools: {tools}).\n"
            "Type /help for commands, Ctrl-C to stop an answer, Ctrl-D to quit.\n"
        )

    # the REPL

    def repl(self, read: Callable[[str], str] = input) -> int:
        """Read and answer lines until end of input (Ctrl-D) or ``/quit``; return 0."""
        # Importing readline gives input() line editing and history (absent on Windows).
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401
        self.banner()
        from anyio.from_thread import start_blocking_portal

        with start_blocking_portal() as portal:
            while True:
                try:
                    line = read("you> ").strip()
                except EOFError:
                    self._write("\n")
                    return 0
                except KeyboardInterrupt:
                    self._write("\n(Ctrl-D quits)\n")
                    continue
                if not line:
                    continue
                if line.startswith("/"):
                    if not self.command(line):
                        return 0
                    continue
                self._turn_blocking(portal, line)

    def _turn_blocking(self, portal: Any, line: str) -> None:
        future: concurrent.futures.Future[None] = portal.start_task_soon(self.turn, line)
        try:
            future.result()
        except KeyboardInterrupt:
            future.cancel()
            # Let the cancelled turn unwind before the next prompt is printed.
            with contextlib.suppress(KeyboardInterrupt):
                concurrent.futures.wait([future], timeout=10)
            self._end_text()
            self._write(self._style("[stopped; the conversation is as before this message]",
                                    "33") + "\n")
        except concurrent.futures.CancelledError:
            self._end_text()
        except AgentkitError as exc:
            self._end_text()
            self._write(self._style(f"error: {type(exc).__name__}: {exc}", "31") + "\n")

    async def turn(self, prompt: str) -> None:
        """Run one user message, printing text and tool activity as it happens; the
        conversation is updated only when the run finishes."""
        async for event in self.agent.stream(prompt, history=self.history):
            if isinstance(event, TextDelta):
                if not self._in_text:
                    self._write(self._style("assistant>", "1") + " ")
                    self._in_text = True
                self._write(event.text)
            elif isinstance(event, ToolCallStarted):
                self._end_text()
                self._write(self._style(f"  -> {_call_text(event.call)}", "36") + "\n")
            elif isinstance(event, ToolResultReceived):
                self.usage.tool_calls += 1
                self._tool_result(event)
            elif isinstance(event, ModelResponseFinished):
                self.usage.add(event.response.usage)
            elif isinstance(event, RunFinished):
                self._end_text()
                self.history = list(event.result.messages)

    def _tool_result(self, event: ToolResultReceived) -> None:
        ms = event.duration * 1000
        content = _preview(event.result.content)
        if event.result.is_error:
            text = f"  !! {event.call.name} failed in {ms:.0f} ms: {content}"
            self._write(self._style(text, "31") + "\n")
        else:
            text = f"  <- {event.call.name} returned in {ms:.0f} ms: {content}"
            self._write(self._style(text, "36") + "\n")

    def command(self, line: str) -> bool:
        """Handle a ``/command``; return False when the session should end."""
        name = line.split()[0].lower()
        if name in ("/quit", "/exit"):
            return False
        if name == "/reset":
            self.history = []
            self._write("Conversation cleared.\n")
        elif name == "/history":
            self._write(_history_text(self.history))
        elif name == "/usage":
            u = self.usage
            self._write(
                f"requests: {u.requests}, input tokens: {u.input_tokens}, output tokens: "
                f"{u.output_tokens}, total tokens: {u.total_tokens}, tool calls: "
                f"{u.tool_calls}\n"
            )
        elif name == "/help":
            self._write(
                "/reset    forget the conversation\n"
                "/history  show the conversation so far\n"
                "/usage    requests, tokens and tool calls in this session\n"
                "/help     this list\n"
                "/quit     leave (or Ctrl-D); Ctrl-C stops the current answer\n"
            )
        else:
            self._write(f"Unknown command {name}; /help lists the commands.\n")
        return True


def _call_text(call: ToolCall) -> str:
    return f"{call.name}({call.arguments})"


def _preview(text: str, limit: int = _RESULT_PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _history_text(messages: Sequence[Message]) -> str:
    if not messages:
        return "(no messages yet)\n"
    lines = []
    for message in messages:
        if message.role == "tool":
            marker = " error" if message.is_error else ""
            lines.append(f"[tool {message.name or message.tool_call_id}{marker}] {message.text}")
            continue
        if message.text:
            lines.append(f"[{message.role}] {message.text}")
        for call in message.tool_calls:
            lines.append(f"[{message.role}] calls {_call_text(call)}")
    return "\n".join(lines) + "\n"
