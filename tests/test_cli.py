"""The ``agentkit`` command: chat in a real pseudo-terminal, ``run``, ``models``, ``--help``.

The chat tests spawn ``python -m agentkit chat`` under pexpect, talking either to a
FakeOpenAIServer (through OPENAI_BASE_URL) or to the real offline model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from agentkit.cli import main
from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply

REPO = Path(__file__).resolve().parents[1]

TOOLS_MODULE = '''
from agentkit import tool

@tool
def get_weather(city: str) -> dict:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    return {"city": city, "temperature_c": 14, "conditions": "light rain"}
'''


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "chat_tools.py").write_text(TOOLS_MODULE)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTKIT_MODEL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    env["TERM"] = "dumb"
    env.update(extra)
    return env


def _spawn_chat(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 20) -> Any:
    return pexpect.spawn(
        sys.executable, ["-m", "agentkit", "chat", *args],
        cwd=str(cwd), env=env, encoding="utf-8", timeout=timeout, dimensions=(40, 200),
    )


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def _fake_env(server: FakeOpenAIServer) -> dict[str, str]:
    return _env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=server.api_key)


# --- chat against FakeOpenAIServer ---------------------------------------------------------


def test_chat_shows_tool_call_streamed_answer_usage_and_quits_on_ctrl_d(
    workdir: Path, server: FakeOpenAIServer
) -> None:
    server.enqueue(
        tool_call_reply(("get_weather", {"city": "Paris"}),
                        usage={"prompt_tokens": 50, "completion_tokens": 10}),
        text_reply(["It is ", "14°C ", "and light rain ", "in Paris."],
                   usage={"prompt_tokens": 80, "completion_tokens": 12}),
    )
    # No --model: a key is set, so the chat uses OpenAI (here the fake server).
    child = _spawn_chat(["--tools", "chat_tools:get_weather"], workdir, _fake_env(server))
    child.expect("chat with gpt-4o-mini \\(tools: get_weather\\)")
    child.expect_exact("you> ")
    child.sendline("What's the weather in Paris?")
    child.expect(r'-> get_weather\(\{"city": ?"Paris"\}\)')
    child.expect(r"<- get_weather returned in \d+ ms: [^\r\n]*\"temperature_c\": ?14")
    child.expect_exact("assistant> It is 14°C and light rain in Paris.")
    child.expect_exact("you> ")
    child.sendline("/usage")
    child.expect_exact(
        "requests: 2, input tokens: 130, output tokens: 22, total tokens: 152, tool calls: 1"
    )
    child.expect_exact("you> ")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    first, second = (r.body for r in server.requests)
    assert first["stream"] is True and second["stream"] is True
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert json.loads(second["messages"][3]["content"])["temperature_c"] == 14


def test_chat_keeps_history_resets_and_ctrl_c_stops_only_the_turn(
    workdir: Path, server: FakeOpenAIServer
) -> None:
    server.enqueue(
        text_reply("Hello Ada."),
        # Slow enough that Ctrl-C lands in the middle of the stream.
        text_reply("one two three four five six seven eight", chunk_delay=0.5),
        text_reply("Your name is Ada."),
    )
    child = _spawn_chat(["--model", "gpt-4o-mini"], workdir, _fake_env(server))
    child.expect_exact("you> ")
    child.sendline("My name is Ada.")
    child.expect_exact("assistant> Hello Ada.")
    child.expect_exact("you> ")
    child.sendline("Count slowly.")
    child.expect_exact("assistant> one")
    child.sendintr()
    child.expect_exact("[stopped; the conversation is as before this message]")
    child.expect_exact("you> ")
    child.sendline("/history")
    child.expect_exact("[user] My name is Ada.")
    child.expect_exact("[assistant] Hello Ada.")
    child.expect_exact("you> ")
    assert "Count slowly" not in child.before
    child.sendline("What is my name?")
    child.expect_exact("assistant> Your name is Ada.")
    child.expect_exact("you> ")
    child.sendline("/reset")
    child.expect_exact("Conversation cleared.")
    child.sendline("/history")
    child.expect_exact("(no messages yet)")
    child.sendline("/help")
    child.expect_exact("/usage    requests, tokens and tool calls in this session")
    child.sendline("/bogus")
    child.expect_exact("Unknown command /bogus")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    third = server.requests[2].body["messages"]
    assert [(m["role"], m["content"]) for m in third[1:]] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]


def test_chat_reports_a_server_error_and_keeps_going(
    workdir: Path, server: FakeOpenAIServer
) -> None:
    from agentkit.testing.fake_openai import error_reply

    server.enqueue(error_reply(401), text_reply("Back again."))
    child = _spawn_chat(["--model", "gpt-4o-mini"], workdir, _fake_env(server))
    child.expect_exact("you> ")
    child.sendline("hi")
    child.expect(r"error: AuthenticationError: [^\r\n]*rejected the API key")
    child.expect_exact("you> ")
    child.sendline("hi again")
    child.expect_exact("assistant> Back again.")
    assert server.api_key not in child.before
    child.expect_exact("you> ")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)


# --- chat against the offline model -----------------------------------------------------


@pytest.mark.local_model
def test_chat_with_the_offline_model_calls_the_tool_and_answers(workdir: Path) -> None:
    child = _spawn_chat(
        ["--model", "local", "--tools", "chat_tools:get_weather"], workdir, _env(), timeout=120
    )
    child.expect("chat with smollm2-135m \\(tools: get_weather\\)")
    child.expect_exact("you> ")
    child.sendline("What's the weather in Paris?")
    child.expect(r'-> get_weather\(\{"city": ?"Paris"\}\)')
    child.expect(r"<- get_weather returned in \d+ ms: [^\r\n]*light rain")
    child.expect(r"assistant> (\S[^\r\n]*)\r?\n")
    assert child.match.group(1).strip()
    child.expect_exact("you> ")
    child.sendline("/usage")
    child.expect(r"requests: 2, input tokens: (\d+), output tokens: (\d+), [^\r\n]*tool calls: 1")
    assert int(child.match.group(1)) > 0 and int(child.match.group(2)) > 0
    child.expect_exact("you> ")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


# --- chat start-up errors (in-process) -------------------------------------------------------


def test_chat_without_key_for_an_openai_model_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["chat", "--model", "gpt-4o-mini"]) == 1
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_chat_without_key_uses_the_offline_model_and_says_how_to_pull_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AGENTKIT_MODEL", raising=False)
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path))  # an empty model cache
    assert main(["chat"]) == 1
    err = capsys.readouterr().err
    assert "LocalModelNotFound" in err and "agentkit models pull" in err


def test_chat_rejects_a_tools_target_that_is_not_a_tool(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "not_tools.py").write_text("NUMBER = 3\n")
    monkeypatch.chdir(workdir)
    assert main(["chat", "--tools", "not_tools:NUMBER"]) == 2
    assert "'not_tools:NUMBER' is a int, not a tool or a function" in capsys.readouterr().err


# --- agentkit run ----------------------------------------------------------------------------

AGENTS_MODULE = '''
from pydantic import BaseModel
from agentkit import Agent, tool
from agentkit.testing import FunctionModel, ScriptedModel, tool_call_response


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _echo(request):
    return "You said: " + request.messages[-1].text


echo = Agent(model=FunctionModel(_echo))
adder = Agent(
    model=ScriptedModel([tool_call_response(("add", {"a": 2, "b": 3})), "2 + 3 = 5"]),
    tools=[add],
)


class Person(BaseModel):
    name: str
    born: int


person = Agent(model=FunctionModel(lambda r: '{"name": "Ada Lovelace", "born": 1815}'),
               output_type=Person)
not_an_agent = 42
'''


@pytest.fixture
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cli_agents.py").write_text(AGENTS_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cli_agents", None)
    return tmp_path


def test_run_prints_the_output(agents_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "cli_agents:echo", "hello there"]) == 0
    assert capsys.readouterr().out == "You said: hello there\n"


def test_run_json_prints_the_whole_result(
    agents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "cli_agents:adder", "What is 2 + 3?", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["output"] == "2 + 3 = 5"
    assert document["turns"] == 2
    assert document["usage"]["requests"] == 2 and document["usage"]["tool_calls"] == 1
    assert [m["role"] for m in document["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert document["messages"][2]["content"] == "5"


def test_run_prints_structured_output_as_json(
    agents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(agents_dir / "cli_agents.py") + ":person", "Ada"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "Ada Lovelace", "born": 1815}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("cli_agents", "expected MODULE:ATTRIBUTE"),
        ("cli_agents:missing", "'cli_agents' has no attribute 'missing'; it defines:"),
        ("cli_agents:not_an_agent", "is a int, not an agentkit.Agent"),
        ("no_such_module:agent", "cannot import 'no_such_module'"),
        ("nowhere/agents.py:agent", "no such file: 'nowhere/agents.py'"),
    ],
)
def test_run_reports_bad_targets_in_one_line(
    agents_dir: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    assert main(["run", target, "hi"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


BROKEN_MODULES = {
    # module text, the line that fails, words the message must contain
    "syntax": ("from agentkit import Agent\n\nagent = Agent(\n", 3, "SyntaxError"),
    "failing_import": ("import os\nimport no_such_dependency_xyz\n", 2,
                       "No module named 'no_such_dependency_xyz'"),
    "raising": ("x = 1\nraise RuntimeError('config missing:\\nset FOO')\n", 2,
                "RuntimeError: config missing: set FOO"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_MODULES))
@pytest.mark.parametrize("as_file", [False, True], ids=["module", "file"])
def test_run_reports_a_target_that_fails_to_import_in_one_line(
    agents_dir: Path, capsys: pytest.CaptureFixture[str], kind: str, as_file: bool
) -> None:
    text, line, words = BROKEN_MODULES[kind]
    path = agents_dir / f"broken_{kind}.py"
    path.write_text(text)
    sys.modules.pop(path.stem, None)
    target = f"{path}:agent" if as_file else f"{path.stem}:agent"
    assert main(["run", target, "hi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("agentkit: error: ")
    assert f"{path.name}, line {line}" in err and str(path) in err
    assert words in err


def test_run_reports_a_run_error_with_exit_code_1(
    agents_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (agents_dir / "failing_agent.py").write_text(textwrap.dedent("""
        from agentkit import Agent
        from agentkit.testing import ScriptedModel, text_response
        agent = Agent(model=ScriptedModel([text_response("cut", finish_reason="length")]))
    """))
    assert main(["run", "failing_agent:agent", "hi"]) == 1
    assert "OutputTruncated" in capsys.readouterr().err


VERBOSE_AGENT = '''
from agentkit import Agent, tool
from agentkit.testing import TestModel


@tool
def lookup_order(order_id: int) -> str:
    """Find an order by its number."""
    return "shipped"


agent = Agent(model=TestModel(), tools=[lookup_order])
'''


@pytest.mark.parametrize("flags", [[], ["-v"], ["-vv"]])
def test_verbose_logs_model_turns_and_tool_calls_with_timings(
    tmp_path: Path, flags: list[str]
) -> None:
    (tmp_path / "verbose_agent.py").write_text(VERBOSE_AGENT)
    proc = subprocess.run(
        [sys.executable, "-m", "agentkit", *flags, "run", "verbose_agent:agent", "hi"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    tool_lines = [line for line in lines if "tool lookup_order" in line]
    model_lines = [line for line in lines if "model test answered turn 1" in line]
    if not flags:
        assert proc.stderr == ""
        return
    assert len(tool_lines) == 1 and re.search(r"returned in \d+\.\d+s", tool_lines[0])
    assert len(model_lines) == 1 and re.search(r"in \d+\.\d+s", model_lines[0])


# --- help, version, models -------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["chat"], ["run"], ["mcp", "serve"]])
def test_every_command_has_help_with_examples(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: agentkit")
    assert "examples:\n  agentkit " in out


def test_models_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--help"]) == 0
    out = capsys.readouterr().out
    assert "pull [NAME]" in out and "examples:\n  agentkit models pull" in out


@pytest.mark.parametrize("prefix", [[], ["-v"]])
def test_models_list_delegates_to_the_model_store(
    prefix: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path))
    assert main([*prefix, "models", "list"]) == 0
    assert "No models in " + str(tmp_path) in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "{chat,run,threads,eval,worker,models,mcp}" in capsys.readouterr().out


def test_python_m_agentkit_version_and_import_stays_light() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentkit", "--version"],
        capture_output=True, text=True, env=_env(), check=True,
    ).stdout
    from agentkit import __version__

    assert out.strip() == f"agentkit {__version__}"
    code = "import sys, agentkit.cli; print(sorted({'openai', 'xllamacpp'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--no-such-option"])
    assert exit_info.value.code == 2
    assert re.search(r"unrecognized arguments: --no-such-option", capsys.readouterr().err)
