"""``agentkit threads`` and ``agentkit chat --thread`` / approvals, run as real processes.

The agent is a test double (FunctionModel) in a module written to a temp dir: it answers
with every user message it has seen (so a test sees what history reached the model),
calls ``delete_file`` (needs approval; it logs to deleted.log) on "delete PATH" and
``get_location`` (external) on "where".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pexpect
import pytest
from _postgres import PostgresServer

from agentkit import Agent
from agentkit.cli import load_object
from agentkit.errors import ConfigurationError
from agentkit.messages import from_openai
from agentkit.threads import PostgresStore, SQLiteStore, store_from_url

REPO = Path(__file__).resolve().parents[1]

BOT = '''
from pathlib import Path

from agentkit import Agent, Message, ToolCall, tool
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FunctionModel


@tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    with Path("deleted.log").open("a") as log:
        log.write(path + "\\n")
    return f"deleted {path}"


@tool(external=True)
def get_location() -> str:
    """Where the user is (the person answers)."""
    raise AssertionError("external tools never run in the agent")


def reply(request: ModelRequest):
    last = request.messages[-1]
    if last.role == "user" and last.text.startswith("delete "):
        call = ToolCall("call_del", "delete_file", '{"path": "%s"}' % last.text[7:])
        return ModelResponse(Message.assistant(None, [call]), "tool_calls")
    if last.role == "user" and last.text == "where":
        call = ToolCall("call_loc", "get_location", "{}")
        return ModelResponse(Message.assistant(None, [call]), "tool_calls")
    if last.role == "tool":
        return "tool said: " + last.text
    return "you said: " + " | ".join(m.text for m in request.messages if m.role == "user")


agent = Agent(name="bot", model=FunctionModel(reply), tools=[delete_file, get_location],
              instructions="Be brief.")
'''


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "bot.py").write_text(BOT)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "AGENTKIT_MODEL", "AGENTKIT_STORE"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    env["TERM"] = "dumb"
    env.update(extra)
    return env


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentkit", *args], cwd=cwd, env=env or _env(),
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def spawn(cwd: Path, *args: str) -> Any:
    return pexpect.spawn(
        sys.executable, ["-m", "agentkit", *args],
        cwd=str(cwd), env=_env(), encoding="utf-8", timeout=20, dimensions=(40, 200),
    )


def _bot(workdir: Path) -> Agent[Any]:
    agent: Agent[Any] = load_object(f"{workdir / 'bot.py'}:agent")
    return agent


def seed(workdir: Path, db: str = "agentkit.db") -> tuple[str, str]:
    """Two threads in ``db``: an older one with a finished conversation and a run that
    waits for approval, and a newer empty one with metadata. Returns their ids."""
    agent = _bot(workdir)

    async def main() -> tuple[str, str]:
        async with SQLiteStore(workdir / db) as store:
            old = await store.create_thread()
            await agent.run("hello", thread=old.id, store=store)
            result = await agent.run("delete a.txt", thread=old.id, store=store)
            assert result.status == "requires_action"
            new = await store.create_thread(metadata={"user": "ada"})
            return old.id, new.id

    cwd = os.getcwd()
    os.chdir(workdir)  # the tool would write deleted.log here (it must not run)
    try:
        return anyio.run(main)
    finally:
        os.chdir(cwd)


# --- agentkit threads ---------------------------------------------------------------------


def test_threads_list_shows_newest_first_with_items_and_metadata(workdir: Path) -> None:
    old, new = seed(workdir)
    out = cli(workdir, "threads", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "(UTC)", "ITEMS", "METADATA"]
    assert lines[1].startswith(new) and lines[1].split()[3:] == ["0", "user=ada"]
    assert lines[2].startswith(old) and lines[2].split()[3] == "4"
    limited = cli(workdir, "threads", "list", "--limit", "1")
    assert [line.split()[0] for line in limited.stdout.splitlines()[1:]] == [new]


def test_threads_show_prints_messages_tool_calls_and_runs(workdir: Path) -> None:
    old, _ = seed(workdir)
    out = cli(workdir, "threads", "show", old)
    assert out.returncode == 0, out.stderr
    assert f"thread {old}" in out.stdout and "4 items" in out.stdout
    assert "[user] hello\n[assistant] you said: hello\n[user] delete a.txt\n" in out.stdout
    assert '[assistant] calls delete_file({"path": "a.txt"})' in out.stdout
    runs = out.stdout.split("runs (2):\n")[1]
    assert " completed " in runs.splitlines()[0]
    assert " requires_action " in runs
    assert 'waits for approval: delete_file({"path": "a.txt"}) [call_del]' in runs


def test_threads_export_writes_loadable_wire_messages(workdir: Path) -> None:
    old, _ = seed(workdir)
    out = cli(workdir, "threads", "export", old)
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert document["thread"]["id"] == old and document["thread"]["item_count"] == 4
    assert document["messages"][:2] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "you said: hello"},
    ]
    assert document["messages"][3]["tool_calls"][0]["function"]["name"] == "delete_file"
    assert [run["status"] for run in document["runs"]] == ["completed", "requires_action"]
    assert document["runs"][1]["pending"][0]["arguments"] == {"path": "a.txt"}
    assert "state" not in document["runs"][0]

    to_file = cli(workdir, "threads", "export", old, "-o", "t.json")
    assert to_file.returncode == 0 and to_file.stdout == ""
    assert json.loads((workdir / "t.json").read_text()) == document
    # Loadable: the messages are chat-completions dicts a run takes as history.
    history = from_openai(document["messages"][:2])
    result = _bot(workdir).run_sync("again", history=history)
    assert result.output == "you said: hello | again"


def test_threads_delete_asks_on_a_terminal_unless_yes(workdir: Path) -> None:
    old, new = seed(workdir)
    child = spawn(workdir, "threads", "delete", old)
    child.expect_exact(f"Delete thread {old} (4 items) and its runs? [y/N] ")
    child.sendline("n")
    child.expect_exact("Nothing deleted.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert cli(workdir, "threads", "show", old).returncode == 0

    child = spawn(workdir, "threads", "delete", old)
    child.expect_exact("[y/N] ")
    child.sendline("y")
    child.expect_exact(f"Deleted thread {old}.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert cli(workdir, "threads", "show", old).returncode == 2

    # Not a terminal: no silent deletion without --yes.
    refused = cli(workdir, "threads", "delete", new, stdin="y\n")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert cli(workdir, "threads", "delete", new, "--yes").returncode == 0
    assert "(no threads in" in cli(workdir, "threads", "list").stdout


@pytest.mark.parametrize("action", ["show", "export", "delete"])
def test_unknown_thread_id_exits_2_with_one_line(workdir: Path, action: str) -> None:
    seed(workdir)
    out = cli(workdir, "threads", action, "thread_nope", *(["--yes"] if action == "delete" else []))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("agentkit: error: no thread with id 'thread_nope'")


def test_store_option_and_environment_and_bad_urls(workdir: Path) -> None:
    seed(workdir, "other.db")
    listed = cli(workdir, "threads", "list", "--store", "sqlite:///other.db")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3
    by_env = cli(workdir, "threads", "list", env=_env(AGENTKIT_STORE=str(workdir / "other.db")))
    assert by_env.stdout == listed.stdout
    bad = cli(workdir, "threads", "list", "--store", "mysql://bob:hunter22@db/app")
    assert bad.returncode == 2
    assert "sqlite:///" in bad.stderr and "postgresql://" in bad.stderr
    assert "hunter22" not in bad.stderr
    missing = cli(workdir, "threads", "list", "--store", "sqlite:///nothing.db")
    assert missing.returncode == 2 and "no SQLite store at 'nothing.db'" in missing.stderr
    assert not (workdir / "nothing.db").exists()


def test_threads_help_has_examples() -> None:
    out = cli(REPO, "threads", "list", "--help")
    assert out.returncode == 0 and "examples:\n  agentkit threads list" in out.stdout


def test_store_from_url_forms(tmp_path: Path) -> None:
    relative = store_from_url("sqlite:///data/agentkit.db")
    assert isinstance(relative, SQLiteStore) and relative.path == "data/agentkit.db"
    absolute = store_from_url(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == f"{tmp_path}/a.db"
    plain = store_from_url("threads.db")
    assert isinstance(plain, SQLiteStore) and plain.path == "threads.db"
    assert isinstance(store_from_url("postgresql://app@127.0.0.1/app"), PostgresStore)
    assert isinstance(store_from_url("postgres://app@127.0.0.1/app"), PostgresStore)
    for bad in ("agentkit", "sqlite:///", "mysql://u:pw-secret@h/db", ""):
        with pytest.raises(ConfigurationError, match="postgresql://") as info:
            store_from_url(bad)
        assert "pw-secret" not in str(info.value)


def test_threads_list_on_postgres(workdir: Path, postgres: PostgresServer) -> None:
    dsn = postgres.new_database()

    async def main() -> str:
        async with PostgresStore(dsn) as store:
            return (await store.create_thread(metadata={"team": "pg"})).id

    thread = anyio.run(main)
    out = cli(workdir, "threads", "list", "--store", dsn)
    assert out.returncode == 0, out.stderr
    row = out.stdout.splitlines()[1].split()
    assert [row[0], *row[3:]] == [thread, "0", "team=pg"]
    chat = cli(workdir, "chat", "bot:agent", "--thread", thread, "--store", dsn,
               stdin="hello\n")
    assert "assistant> you said: hello" in chat.stdout
    assert chat.returncode == 0 and chat.stderr == ""
    assert "[user] hello" in cli(workdir, "threads", "show", thread, "--store", dsn).stdout


# --- agentkit chat --thread, approvals ----------------------------------------------------


def _quit(child: Any) -> None:
    child.expect_exact("you> ")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_chat_on_a_new_thread_then_the_same_thread_continues(workdir: Path) -> None:
    child = spawn(workdir, "chat", "bot:agent", "--thread", "new")
    child.expect(r"New thread (thread_\w+) \(continue it with --thread thread_\w+\)")
    thread = child.match.group(1)
    child.expect_exact("you> ")
    child.sendline("hello")
    child.expect_exact("assistant> you said: hello")
    _quit(child)

    child = spawn(workdir, "chat", "bot:agent", "--thread", thread)
    child.expect_exact(f"Continuing thread {thread} (2 items).")
    child.expect_exact("you> ")
    child.sendline("world")
    # The model saw the first process's turn.
    child.expect_exact("assistant> you said: hello | world")
    child.expect_exact("you> ")
    child.sendline("/history")
    child.expect_exact("[user] hello\r\n[assistant] you said: hello\r\n[user] world")
    _quit(child)

    shown = cli(workdir, "threads", "show", thread)
    assert "4 items" in shown.stdout and shown.stdout.count(" completed ") == 2


def test_chat_unknown_thread_exits_2(workdir: Path) -> None:
    out = cli(workdir, "chat", "bot:agent", "--thread", "thread_nope")
    assert out.returncode == 2
    assert out.stderr.startswith("agentkit: error: no thread with id 'thread_nope'")


@pytest.mark.parametrize("thread", [[], ["--thread", "new"]], ids=["memory", "thread"])
def test_chat_asks_before_a_tool_that_needs_approval(workdir: Path, thread: list[str]) -> None:
    child = spawn(workdir, "chat", "bot:agent", *thread)
    child.expect_exact("you> ")
    child.sendline("delete a.txt")
    child.expect_exact('?? delete_file({"path": "a.txt"})')
    child.expect_exact("run delete_file? [y/n] ")
    assert not (workdir / "deleted.log").exists()
    child.sendline("maybe")  # not an answer: asked again
    child.expect_exact("run delete_file? [y/n] ")
    child.sendline("y")
    child.expect_exact("assistant> tool said: deleted a.txt")
    assert (workdir / "deleted.log").read_text() == "a.txt\n"

    child.expect_exact("you> ")
    child.sendline("delete b.txt")
    child.expect_exact("run delete_file? [y/n] ")
    child.sendline("n")
    child.expect_exact("why not (optional; the model reads it): ")
    child.sendline("b.txt is the backup")
    child.expect_exact(
        "assistant> tool said: Not run: the user rejected this call. Reason: b.txt is the backup"
    )
    assert (workdir / "deleted.log").read_text() == "a.txt\n"
    child.expect_exact("you> ")
    child.sendline("ok")  # the whole exchange is the conversation now
    child.expect_exact("assistant> you said: delete a.txt | delete b.txt | ok")
    _quit(child)


def test_chat_asks_the_person_for_an_external_tools_output(workdir: Path) -> None:
    child = spawn(workdir, "chat", "bot:agent")
    child.expect_exact("you> ")
    child.sendline("where")
    child.expect_exact("get_location is run by you; its output: ")
    child.sendline("Paris")
    child.expect_exact("assistant> tool said: Paris")
    _quit(child)


def test_ctrl_c_at_the_question_cancels_the_run_and_the_chat_goes_on(workdir: Path) -> None:
    child = spawn(workdir, "chat", "bot:agent", "--thread", "new")
    child.expect(r"New thread (thread_\w+)")
    thread = child.match.group(1)
    child.expect_exact("you> ")
    child.sendline("delete a.txt")
    child.expect_exact("[y/n] ")
    child.sendintr()
    child.expect_exact("[stopped; the run is cancelled")
    child.expect_exact("you> ")
    child.sendline("hi")
    child.expect_exact("assistant> you said: delete a.txt | hi")
    _quit(child)
    assert not (workdir / "deleted.log").exists()
    runs = json.loads(cli(workdir, "threads", "export", thread).stdout)["runs"]
    assert [run["status"] for run in runs] == ["cancelled", "completed"]


def test_a_run_left_waiting_is_answered_by_the_next_chat_on_the_thread(workdir: Path) -> None:
    child = spawn(workdir, "chat", "bot:agent", "--thread", "new")
    child.expect(r"New thread (thread_\w+)")
    thread = child.match.group(1)
    child.expect_exact("you> ")
    child.sendline("delete a.txt")
    child.expect_exact("[y/n] ")
    child.sendeof()  # leave: the run stays waiting in the store
    child.expect_exact(f"still waits; chat with --thread {thread} to answer.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    child = spawn(workdir, "chat", "bot:agent", "--thread", thread)
    child.expect_exact('?? delete_file({"path": "a.txt"})')
    child.expect_exact("[y/n] ")
    child.sendline("y")
    child.expect_exact("<- delete_file: deleted a.txt")
    child.expect_exact("assistant> tool said: deleted a.txt")
    _quit(child)
    assert (workdir / "deleted.log").read_text() == "a.txt\n"
