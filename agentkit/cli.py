"""The ``agentkit`` command: chat with a model, run one prompt, manage threads and models.

``agentkit chat`` is an interactive REPL with streamed answers, live tool calls and y/n
approvals (optionally on a stored thread); ``agentkit run module:agent "prompt"`` runs an
:class:`~agentkit.Agent` from your code; ``agentkit threads list|show|export|delete``
manages stored threads; ``agentkit eval dataset.yaml --agent module:agent`` runs an eval
and gates CI on its pass rate; ``agentkit models pull|list`` delegates to
:mod:`agentkit.model_store`. ``python -m
agentkit`` is the same command. Heavy imports (``openai``, llama.cpp) happen only when a
model is used, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agentkit._version import __version__
from agentkit.agent import Agent, resolve_model, run_blocking
from agentkit.errors import AgentkitError, ConfigurationError, NotFound
from agentkit.messages import Message, ToolCall, to_openai
from agentkit.models.base import Model, TextDelta
from agentkit.models.openai import OpenAIChatModel
from agentkit.run import (
    ModelResponseFinished,
    PendingCall,
    RunEvent,
    RunFinished,
    RunResult,
    ToolCallStarted,
    ToolResultReceived,
)
from agentkit.settings import ModelSettings
from agentkit.tools import Tool
from agentkit.usage import Usage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from agentkit.threads import RunRecord, Store, Thread

__all__ = ["CLIError", "ChatSession", "build_parser", "load_object", "main"]

DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
DEFAULT_STORE = "sqlite:///agentkit.db"
_TOOLS_HINT = " Use the tools when they help you answer."
# Long tool results would flood the terminal; /history shows them whole.
_RESULT_PREVIEW = 200

_MAIN_EXAMPLES = """\
examples:
  agentkit chat                      chat (OpenAI if OPENAI_API_KEY is set, else offline)
  agentkit chat --model local --tools examples/weather_bot.py:get_weather
  agentkit run myapp.agents:support_agent "Where is my order 42?"
  agentkit chat myapp.agents:support_agent --thread new
  agentkit threads list --store sqlite:///agentkit.db
  agentkit eval evals/support.yaml --agent myapp.agents:support_agent --min-pass-rate 0.9
  agentkit models pull               fetch the offline model (98 MB, once)
  agentkit mcp serve myapp.tools:tools   your tools as an MCP server (stdio; --http PORT)
"""

_EVAL_EXAMPLES = """\
examples:
  agentkit eval evals/support.yaml --agent myapp.agents:support_agent
  agentkit eval evals/support.yaml --agent app:agent --repeat 3 -o report.json -o report.html
  agentkit eval evals/support.yaml --agent app:agent --baseline main.json --min-pass-rate 0.9

Exit status: 0 at or above --min-pass-rate (or without one), 1 below it, 2 on bad usage (a
missing or invalid dataset, baseline or agent). -o writes the report: .html for a page
with a chart, anything else JSON (usable as a later --baseline).
"""

_CHAT_EXAMPLES = """\
examples:
  agentkit chat
  agentkit chat --model gpt-4o --instructions "Answer in French."
  agentkit chat --model local --tools examples/weather_bot.py:get_weather
  agentkit chat --tools myapp.tools:search myapp.tools:fetch_page
  OPENAI_BASE_URL=http://localhost:11434/v1 agentkit chat --model llama3.2
  agentkit chat myapp.agents:support_agent             chat with your own Agent
  agentkit chat myapp.agents:support_agent --thread new    stored in agentkit.db
  agentkit chat myapp.agents:support_agent --thread thread_0661a8...  continue it

in the chat:
  /reset     forget the conversation (on a thread: start a new thread)
  /history   show the conversation
  /usage     tokens and requests so far        /help     this list
  Ctrl-C     stop the current answer (the conversation is kept)
  Ctrl-D     quit

A tool that needs approval asks "[y/n]" before it runs (n: an optional reason the
model reads); an external tool asks you for its output.

TARGET is an Agent from your code (as for "agentkit run"); without it the chat builds one
from --model, --tools and --instructions. --thread stores every turn in --store (default
$AGENTKIT_STORE, else sqlite:///agentkit.db) and continues the thread next time.

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

_THREADS_EXAMPLES = """\
examples:
  agentkit threads list                         newest first, from ./agentkit.db
  agentkit threads list --store postgresql://app@db.internal/app --limit 50
  agentkit threads show thread_0661a8f4e373080b03ad2a7ccc
  agentkit threads export thread_0661a8f4e373080b03ad2a7ccc -o thread.json
  agentkit threads delete thread_0661a8f4e373080b03ad2a7ccc --yes

--store is sqlite:///relative/path.db, sqlite:////absolute/path.db, a path ending in .db,
or postgresql://user@host/dbname; the default is $AGENTKIT_STORE, else
sqlite:///agentkit.db. An unknown thread id exits with code 2.
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


_MCP_EXAMPLES = """\
examples:
  agentkit mcp serve myapp.tools:search myapp.tools:fetch_page      over stdio
  agentkit mcp serve examples/weather_bot.py:get_weather --http 8000
                                     at http://127.0.0.1:8000/mcp

Each MODULE:ATTR is a tool, a function or a list of them; MCP clients get the same
schemas a model gets. Over stdio, stdout carries the protocol: logs go to stderr.
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
    sub = parser.add_subparsers(dest="command", metavar="{chat,run,threads,eval,worker,models,mcp}")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store", metavar="URL", default=os.environ.get("AGENTKIT_STORE") or DEFAULT_STORE,
        help="the thread store: sqlite:///path.db or postgresql://... "
             "(default: $AGENTKIT_STORE, else %(default)s)",
    )

    chat = sub.add_parser(
        "chat", help="chat with a model in the terminal", epilog=_CHAT_EXAMPLES,
        description="An interactive chat with streamed answers and live tool calls.",
        formatter_class=raw, parents=[store],
    )
    chat.add_argument(
        "target", metavar="TARGET", nargs="?",
        help="an Agent from your code: module:agent or path/to/file.py:agent",
    )
    chat.add_argument(
        "--thread", metavar="ID", help='continue this stored thread ("new": start one)'
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

    threads = sub.add_parser(
        "threads", help="list, show, export and delete stored threads",
        epilog=_THREADS_EXAMPLES, formatter_class=raw,
        description="Stored conversations (see agentkit chat --thread and Agent(store=...)).",
    )
    actions = threads.add_subparsers(dest="action", metavar="{list,show,export,delete}",
                                     required=True)
    listing = actions.add_parser("list", parents=[store], help="threads, newest first",
                                 epilog=_THREADS_EXAMPLES, formatter_class=raw)
    listing.add_argument("--limit", type=int, default=20, help="at most this many (%(default)s)")
    show = actions.add_parser("show", parents=[store], help="a thread's messages and runs",
                              epilog=_THREADS_EXAMPLES, formatter_class=raw)
    export = actions.add_parser(
        "export", parents=[store], help="a thread as JSON (messages as chat-completions dicts)",
        epilog=_THREADS_EXAMPLES, formatter_class=raw,
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    delete = actions.add_parser("delete", parents=[store], help="delete a thread and its runs",
                                epilog=_THREADS_EXAMPLES, formatter_class=raw)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for action in (show, export, delete):
        action.add_argument("thread", metavar="THREAD_ID")

    evaluate = sub.add_parser(
        "eval", help="run an eval dataset against an Agent from your code",
        epilog=_EVAL_EXAMPLES, formatter_class=raw,
        description="Run every case of a dataset, check the runs and print a report.",
    )
    evaluate.add_argument("dataset", metavar="DATASET", help="a .yaml or .jsonl dataset")
    evaluate.add_argument("--agent", required=True, metavar="TARGET",
                          help="module:agent or path/to/file.py:agent")
    evaluate.add_argument("--baseline", metavar="REPORT", help="compare with a saved report")
    evaluate.add_argument("--min-pass-rate", type=float, metavar="RATE",
                          help="exit 1 when the pass rate is below RATE (0 to 1)")
    evaluate.add_argument("--concurrency", type=int, default=4, help="runs at once (%(default)s)")
    evaluate.add_argument("--repeat", type=int, default=1, help="runs per case (%(default)s)")
    evaluate.add_argument("-o", "--output", action="append", default=[], metavar="FILE",
                          help="save the report (.json, or .html with a chart; repeatable)")

    worker = sub.add_parser(
        "worker", help="run durable runs from a DurableRunner (extra durable)",
        description="Work on the durable runs of a DurableRunner until SIGTERM or Ctrl-C; "
                    "any number of workers may share its database.",
    )
    worker.add_argument("target", metavar="TARGET",
                        help="a DurableRunner: module:runner or path/to/file.py:runner")
    worker.add_argument("--concurrency", type=int, metavar="N",
                        help="the most runs in progress in this worker at once")
    worker.add_argument("--executor-id", metavar="ID",
                        help="this worker's DBOS executor id (default: host name + random)")

    models = sub.add_parser("models", help="pull and list offline models", add_help=False)
    models.add_argument("models_args", nargs=argparse.REMAINDER)

    mcp = sub.add_parser(
        "mcp", help="serve your tools to MCP clients", epilog=_MCP_EXAMPLES,
        formatter_class=raw, description="Model Context Protocol (needs agentkit[mcp]).",
    )
    mcp_actions = mcp.add_subparsers(dest="action", metavar="{serve}", required=True)
    serve = mcp_actions.add_parser(
        "serve", help="serve tools over stdio, or streamable HTTP with --http",
        epilog=_MCP_EXAMPLES, formatter_class=raw,
    )
    serve.add_argument(
        "targets", metavar="MODULE:ATTR", nargs="+",
        help="tools to serve: a tool, a function or a list of them",
    )
    serve.add_argument(
        "--http", metavar="PORT", type=int,
        help="serve over streamable HTTP at http://HOST:PORT/mcp (default: stdio)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (%(default)s)")
    serve.add_argument("--name", default="agentkit", help="server name (%(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentkit`` command with ``argv`` (default ``sys.argv[1:]``); return its
    exit code: 0 success, 1 a run or model error, 2 a usage error or an unknown thread id,
    130 interrupted."""
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
        if args.command == "threads":
            return _threads(args)
        if args.command == "mcp":
            return _mcp_serve(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "worker":
            return _worker(args)
    except (CLIError, NotFound) as exc:
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


# --- agentkit mcp serve -----------------------------------------------------------------


def _mcp_serve(args: argparse.Namespace) -> int:
    import anyio

    from agentkit import mcp

    tools = load_tools(args.targets)
    mcp.create_server(tools, name=args.name)  # refuse bad tools before serving anything
    if args.http is None:
        anyio.run(lambda: mcp.serve_stdio(tools, name=args.name))
    else:
        print(f"agentkit: serving {len(tools)} tools at http://{args.host}:{args.http}/mcp",
              file=sys.stderr)
        anyio.run(lambda: mcp.serve_http(tools, port=args.http, host=args.host, name=args.name))
    return 0


# --- agentkit run -----------------------------------------------------------------------


def _load_agent(target: str) -> Agent[Any]:
    agent = load_object(target)
    if not isinstance(agent, Agent):
        raise CLIError(f"{target!r} is a {type(agent).__name__}, not an agentkit.Agent")
    return agent


def _worker(args: argparse.Namespace) -> int:
    from agentkit.durable import DurableRunner

    runner = load_object(args.target)
    if not isinstance(runner, DurableRunner):
        raise CLIError(
            f"{args.target!r} is a {type(runner).__name__}, not an agentkit.durable.DurableRunner"
        )
    runner.serve(concurrency=args.concurrency, executor_id=args.executor_id)
    return 0


def _run(args: argparse.Namespace) -> int:
    agent = _load_agent(args.target)
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


def _eval(args: argparse.Namespace) -> int:
    from agentkit.evals import Dataset, EvalReport

    if args.min_pass_rate is not None and not 0 <= args.min_pass_rate <= 1:
        raise CLIError(f"--min-pass-rate must be between 0 and 1, got {args.min_pass_rate}")
    if args.concurrency < 1 or args.repeat < 1:
        raise CLIError("--concurrency and --repeat must be at least 1")
    try:
        dataset = Dataset.load(args.dataset)
        baseline = EvalReport.load(args.baseline) if args.baseline else None
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None
    agent = _load_agent(args.agent)
    report = run_blocking(lambda: dataset.run(agent, concurrency=args.concurrency,
                                              repeat=args.repeat))
    report.print(baseline=baseline)
    for path in args.output:
        report.save(path)
        print(f"wrote {path}", file=sys.stderr)
    if args.min_pass_rate is not None and report.pass_rate < args.min_pass_rate:
        print(f"agentkit: pass rate {report.pass_rate:.1%} is below --min-pass-rate "
              f"{args.min_pass_rate:.1%}", file=sys.stderr)
        return 1
    return 0


# --- agentkit threads -------------------------------------------------------------------


def _open_store(url: str, *, must_exist: bool = False) -> Store:
    """The store ``url`` names (a bad URL is a usage error); with ``must_exist``, a SQLite
    file that is not there is one too, rather than a new empty database."""
    from agentkit.threads import SQLiteStore, store_from_url

    try:
        store = store_from_url(url)
    except ConfigurationError as exc:
        raise CLIError(f"--store: {exc}") from None
    if must_exist and isinstance(store, SQLiteStore) and not os.path.exists(store.path):
        raise CLIError(
            f"no SQLite store at {store.path!r} (from --store {url}); give the URL of an "
            "existing one with --store or $AGENTKIT_STORE"
        )
    return store


def _threads(args: argparse.Namespace) -> int:
    import anyio

    store = _open_store(args.store, must_exist=True)

    async def command() -> int:
        try:
            return await _THREAD_ACTIONS[args.action](args, store)
        finally:
            await store.close()

    return anyio.run(command)


async def _threads_list(args: argparse.Namespace, store: Store) -> int:
    if args.limit < 1:
        raise CLIError(f"--limit must be at least 1, got {args.limit}")
    threads = await store.list_threads(limit=args.limit)
    if not threads:
        print(f"(no threads in {args.store})")
        return 0
    width = max(len(t.id) for t in threads)
    print(f"{'ID':<{width}}  {'CREATED (UTC)':<19}  {'ITEMS':>5}  METADATA")
    for t in threads:
        meta = ", ".join(f"{k}={v}" for k, v in sorted(t.metadata.items()))
        print(f"{t.id:<{width}}  {_when(t.created_at)}  {t.item_count:>5}  {meta}".rstrip())
    return 0


async def _threads_show(args: argparse.Namespace, store: Store) -> int:
    thread = await store.get_thread(args.thread)
    messages = await store.messages(thread.id)
    runs = await store.list_runs(thread.id)
    meta = ", ".join(f"{k}={v}" for k, v in sorted(thread.metadata.items())) or "none"
    sys.stdout.write(
        f"thread {thread.id}, created {_when(thread.created_at)} UTC, "
        f"{thread.item_count} items, metadata: {meta}\n\n{_history_text(messages)}\n"
        f"runs ({len(runs)}):\n"
    )
    for run in runs:
        line = f"  {run.id}  {run.status:<15}  {run.agent}  {_when(run.created_at)}"
        line += f"  requests: {run.usage.requests}, tokens: {run.usage.total_tokens}"
        if run.error:
            line += f"\n    error: {run.error}"
        for call in run.pending:
            line += f"\n    waits for {call.kind}: {call.name}({_args(call)}) [{call.id}]"
        print(line)
    return 0


async def _threads_export(args: argparse.Namespace, store: Store) -> int:
    thread = await store.get_thread(args.thread)
    document = {
        "thread": _jsonable(thread),
        "messages": to_openai(await store.messages(thread.id)),
        "runs": [_jsonable(run, drop=("state", "lease_until"))
                 for run in await store.list_runs(thread.id)],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote thread {thread.id} ({len(document['messages'])} messages) to "
              f"{args.output}", file=sys.stderr)
    return 0


async def _threads_delete(args: argparse.Namespace, store: Store) -> int:
    thread = await store.get_thread(args.thread)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError(
                f"not deleting thread {thread.id} without confirmation: input is not a "
                "terminal; pass --yes"
            )
        answer = input(f"Delete thread {thread.id} ({thread.item_count} items) and its "
                       "runs? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    await store.delete_thread(thread.id)
    print(f"Deleted thread {thread.id}.")
    return 0


_THREAD_ACTIONS = {
    "list": _threads_list,
    "show": _threads_show,
    "export": _threads_export,
    "delete": _threads_delete,
}


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else "-"


def _jsonable(record: Thread | RunRecord, drop: Sequence[str] = ()) -> dict[str, Any]:
    from pydantic_core import to_jsonable_python

    data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return {k: to_jsonable_python(v) for k, v in data.items() if k not in drop}


# --- agentkit chat ----------------------------------------------------------------------


def _is_local(model: Model) -> bool:
    # Checked through sys.modules so that an OpenAI chat never imports the llama.cpp side.
    local = sys.modules.get("agentkit.models.local")
    return local is not None and isinstance(model, local.LocalModel)


def _chat(args: argparse.Namespace) -> int:
    override = None
    if args.target:
        if args.tools or args.instructions or args.tool_choice:
            raise CLIError(
                "--tools, --instructions and --tool-choice configure the built-in chat "
                f"agent; with TARGET ({args.target}) set them on your Agent"
            )
        agent: Agent[Any] = _load_agent(args.target)
        model = agent.model if args.model is None else resolve_model(args.model)
        override = model if args.model is not None else None
    else:
        tools = load_tools(args.tools)
        model = resolve_model(args.model)
        tool_choice = args.tool_choice
        if tool_choice is None and tools and _is_local(model):
            tool_choice = "required"
        agent = Agent(
            name="chat",
            instructions=args.instructions or DEFAULT_INSTRUCTIONS + (_TOOLS_HINT if tools else ""),
            model=model,
            tools=tools,
            settings=ModelSettings(tool_choice=tool_choice),
        )
    if isinstance(model, OpenAIChatModel):
        model.require_key()  # before the first prompt, not after the first message
    store = _open_store(args.store) if args.thread else None
    color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    session = ChatSession(agent, out=sys.stdout, color=color, store=store, thread=args.thread,
                          model=override)
    return session.repl()


class ChatSession:
    """One terminal conversation with an agent: commands, streamed turns, approvals,
    history, usage; on a stored thread when given ``store`` and ``thread`` (an id, or
    ``"new"``).

    Turns run on one event loop in a background thread for the whole session (so a
    model's HTTP connections are reused), while the main thread reads input, asks the
    person about calls that need approval, and receives Ctrl-C, which cancels the running
    turn and leaves the conversation as it was before it (on a thread: the run is
    cancelled; the steps it finished stay stored).
    """

    def __init__(
        self,
        agent: Agent[Any],
        *,
        out: TextIO,
        color: bool = False,
        store: Store | None = None,
        thread: str | None = None,
        model: Model | None = None,
    ) -> None:
        if (store is None) != (thread is None):
            raise ConfigurationError("a chat on a thread needs both store= and thread=")
        self.agent = agent
        self.out = out
        self.color = color
        self.store = store
        self.thread = thread
        self.model = model
        self.history: list[Message] = []
        self.usage = Usage()
        self._in_text = False
        self._read: Callable[[str], str] = input
        self._portal: Any = None

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
        model = self.model or self.agent.model
        self._write(
            f"agentkit {__version__} chat with {model.name} (tools: {tools}).\n"
            "Type /help for commands, Ctrl-C to stop an answer, Ctrl-D to quit.\n"
        )

    # the REPL

    def repl(self, read: Callable[[str], str] = input) -> int:
        """Read and answer lines until end of input (Ctrl-D) or ``/quit``; return 0."""
        # Importing readline gives input() line editing and history (absent on Windows).
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401
        self._read = read
        from anyio.from_thread import start_blocking_portal

        with start_blocking_portal() as portal:
            self._portal = portal
            try:
                self._loop(portal, read)
            finally:
                if self.store is not None:
                    # Shielded from a Ctrl-C: a pool left open warns at exit.
                    with contextlib.suppress(Exception, KeyboardInterrupt):
                        portal.call(self.store.close)
        return 0

    def _loop(self, portal: Any, read: Callable[[str], str]) -> None:
        waiting = portal.call(self.open_thread) if self.store is not None else None
        self.banner()
        if not self._settle(portal, waiting):
            return
        while True:
            try:
                line = read("you> ").strip()
            except EOFError:
                self._write("\n")
                return
            except KeyboardInterrupt:
                self._write("\n(Ctrl-D quits)\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            if not self._settle(portal, self._blocking(portal, self.turn, line)):
                return

    async def open_thread(self) -> RunResult[Any] | None:
        """Create the thread (``"new"``) or load it; return its last run if that waits
        for the person (so a chat picks up approvals left by another process)."""
        assert self.store is not None and self.thread is not None
        if self.thread == "new":
            self.thread = (await self.store.create_thread()).id
            self._write(f"New thread {self.thread} (continue it with --thread {self.thread}).\n")
            return None
        thread = await self.store.get_thread(self.thread)
        self.history = await self.store.messages(thread.id)
        runs = await self.store.list_runs(thread.id)
        self._write(f"Continuing thread {thread.id} ({thread.item_count} items).\n")
        if not runs or runs[-1].status != "requires_action":
            return None
        run = runs[-1]
        return RunResult(output=None, messages=self.history, usage=run.usage, turns=0,
                         status="requires_action", pending=run.pending, run_id=run.id)

    def _blocking(self, portal: Any, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(*args)`` on the session's loop; Ctrl-C cancels it. Errors are
        printed (the chat goes on) and give None."""
        future: concurrent.futures.Future[Any] = portal.start_task_soon(work, *args)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            # Let the cancelled turn unwind before the next prompt is printed.
            with contextlib.suppress(KeyboardInterrupt):
                concurrent.futures.wait([future], timeout=10)
            self._end_text()
            self._stopped()
        except concurrent.futures.CancelledError:
            self._end_text()
        except AgentkitError as exc:
            self._end_text()
            self._write(self._style(f"error: {type(exc).__name__}: {exc}", "31") + "\n")
        return None

    def _stopped(self) -> None:
        text = (
            "[stopped; the run is cancelled, the steps it finished stay in the thread]"
            if self.store is not None
            else "[stopped; the conversation is as before this message]"
        )
        self._write(self._style(text, "33") + "\n")

    async def turn(self, prompt: str) -> RunResult[Any] | None:
        """Run one user message, printing text and tool activity as it happens; the
        conversation is updated only when the run finishes (or is stored, on a thread)."""
        if self.store is not None:
            events = self.agent.stream(prompt, thread=self.thread, store=self.store,
                                       model=self.model)
        else:
            events = self.agent.stream(prompt, history=self.history, model=self.model)
        return await self._show(events)

    async def _show(self, events: AsyncIterator[RunEvent]) -> RunResult[Any] | None:
        result = None
        async for event in events:
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
                result = event.result
        if result is not None:
            await self._finished(result)
        return result

    async def _finished(self, result: RunResult[Any]) -> None:
        if self.store is not None:
            assert self.thread is not None
            self.history = await self.store.messages(self.thread)
        elif result.status == "completed":
            self.history = list(result.messages)
        if result.status == "cancelled":
            self._write(self._style("[the run was cancelled]", "33") + "\n")

    # approvals

    def _settle(self, portal: Any, result: RunResult[Any] | None) -> bool:
        """While the run waits for the person, ask about each pending call and resume it
        with the answers. False when the person quits (Ctrl-D)."""
        while result is not None and result.status == "requires_action":
            try:
                decisions = self._ask(result.pending)
            except KeyboardInterrupt:
                self._write("\n")
                if self.store is not None and result.run_id is not None:
                    self._blocking(portal, self.store.cancel_run, result.run_id)
                    self.history = portal.call(self.store.messages, self.thread)
                self._stopped()
                return True
            except EOFError:
                self._write("\n")
                if self.store is not None:
                    self._write(f"Run {result.run_id} still waits; chat with --thread "
                                f"{self.thread} to answer.\n")
                return False
            result = self._blocking(portal, self.resume, result, *decisions)
        return True

    def _ask(
        self, pending: Sequence[PendingCall]
    ) -> tuple[list[str], dict[str, str], dict[str, str]]:
        approve: list[str] = []
        reject: dict[str, str] = {}
        outputs: dict[str, str] = {}
        for call in pending:
            self._write(self._style(f"  ?? {call.name}({_args(call)})", "35") + "\n")
            if call.kind == "external":
                outputs[call.id] = self._read(f"  {call.name} is run by you; its output: ")
                continue
            answer = ""
            while answer not in ("y", "yes", "n", "no"):
                answer = self._read(f"  run {call.name}? [y/n] ").strip().lower()
            if answer.startswith("y"):
                approve.append(call.id)
            else:
                reason = self._read("  why not (optional; the model reads it): ").strip()
                reject[call.id] = reason or "the user declined"
        return approve, reject, outputs

    async def resume(
        self,
        waiting: RunResult[Any],
        approve: list[str],
        reject: dict[str, str],
        outputs: dict[str, str],
    ) -> RunResult[Any] | None:
        """Continue a run that waits, with the person's decisions on its calls."""
        if self.store is None:
            state = waiting.state
            assert state is not None
            state.decide(approve, reject, outputs)
            return await self._show(self.agent.stream(state, model=self.model))
        # A run on a thread resumes by id (from the store), not streamed: show its steps
        # once it stops.
        result: RunResult[Any] = await self.agent.resume(
            waiting.run_id or "", store=self.store, approve=approve, reject=reject,
            outputs=outputs, model=self.model,
        )  # fmt: skip
        self._replay(result.messages, after={p.id for p in waiting.pending})
        for field in dataclasses.fields(Usage):
            name = field.name
            if name not in ("tool_calls", "cost_usd"):  # cost_usd may be None: not a count
                spent = getattr(result.usage, name) - getattr(waiting.usage, name)
                setattr(self.usage, name, getattr(self.usage, name) + spent)
        await self._finished(result)
        return result

    def _replay(self, messages: Sequence[Message], after: set[str]) -> None:
        """Print the messages that follow the assistant message calling ``after``."""
        start = next((i + 1 for i, m in enumerate(messages)
                      if any(c.id in after for c in m.tool_calls)), len(messages))
        for message in messages[start:]:
            if message.role == "tool":
                self.usage.tool_calls += 1
                text = f"  <- {message.name or message.tool_call_id}: {_preview(message.text)}"
                self._write(self._style(text, "31" if message.is_error else "36") + "\n")
                continue
            for call in message.tool_calls:
                self._write(self._style(f"  -> {_call_text(call)}", "36") + "\n")
            if message.role == "assistant" and message.text:
                self._write(self._style("assistant>", "1") + f" {message.text}\n")

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
            if self.store is not None and self._portal is not None:
                self.thread = self._portal.call(self.store.create_thread).id
                self._write(f"New thread {self.thread}.\n")
            else:
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
                "/reset    forget the conversation (on a thread: start a new thread)\n"
                "/history  show the conversation so far\n"
                "/usage    requests, tokens and tool calls in this session\n"
                "/help     this list\n"
                "/quit     leave (or Ctrl-D); Ctrl-C stops the current answer\n"
            )
        else:
            self._write(f"Unknown command {name}; /help lists the commands.\n")
        return True


def _args(call: PendingCall) -> str:
    return json.dumps(call.arguments, ensure_ascii=False)


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
