"""Every example runs as a script: offline (no OPENAI_API_KEY), and with a key against a
FakeOpenAIServer standing in for OpenAI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.testing.fake_openai import FakeOpenAIServer, Reply, text_reply, tool_call_reply

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _run(script: str, *args: str, env_extra: dict[str, str] | None = None,
         timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTKIT_MODEL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_tested() -> None:
    tested = {"weather_bot.py", "structured_output.py", "parallel_tools.py", "backend_service.py",
              "approval_bot.py",
              "mcp_tools.py",  # tests/test_examples_mcp.py
              "triage_bot.py",
              "guarded_support_bot.py",
              "search_and_ask.py",
              "eval_and_finetune.py",
              "durable_kill9.py",
              }
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_")}
    assert scripts == tested


# --- offline ---------------------------------------------------------------------------------


@pytest.mark.local_model
def test_weather_bot_offline_calls_the_tool_and_streams_an_answer() -> None:
    out = _run("weather_bot.py")
    assert "[model: smollm2-135m]" in out
    assert re.search(r'-> get_weather\(\{"city": ?"Paris"\}\)', out)
    assert '<- {"city":"Paris","temperature_c":14,"conditions":"light rain"}' in out
    answer = re.search(r"assistant> (.*)", out)
    assert answer is not None and answer.group(1).strip()


@pytest.mark.local_model
def test_structured_output_offline_returns_a_valid_person() -> None:
    out = _run("structured_output.py")
    match = re.search(r"Person: (\{.*?\})\n", out, re.S)
    assert match is not None, out
    person = json.loads(match.group(1))
    assert set(person) == {"name", "born", "city", "occupation"}
    assert isinstance(person["born"], int)
    # The small model copies the name reliably; numbers and places less so (see the docstring).
    assert person["name"] == "Ada Lovelace"


@pytest.mark.local_model
@pytest.mark.parametrize(("flag", "deleted"), [("--yes", True), ("--no", False)])
def test_approval_bot_offline_asks_before_deleting(flag: str, deleted: bool) -> None:
    out = _run("approval_bot.py", flag)
    assert "[model: smollm2-135m, thread thread_" in out
    assert re.search(r"the bot wants to run delete_file\(\{'path': '[^']*'\}\)\. Allow\? "
                     r"\[y/n\] [yn]", out), out
    assert f"run completed; notes.txt exists: {not deleted}; 4 messages stored" in out


def test_parallel_tools_offline_overlaps_the_four_calls() -> None:
    out = _run("parallel_tools.py")
    assert out.count(" -> ") == 4 and out.count(" <- ") == 4
    match = re.search(r"4 tool calls: ([\d.]+) s of work, done together in ([\d.]+) s", out)
    assert match is not None, out
    work, wall = float(match.group(1)), float(match.group(2))
    assert work >= 2.0 and wall < 1.2
    assert "assistant> Paris: 15°C, clear; Tokyo: 15°C, clear; Lima: 14°C, clear; " in out


def test_backend_service_selftest_keeps_one_conversation_per_user() -> None:
    out = _run("backend_service.py", "--selftest")
    assert "model: offline-stand-in" in out
    assert "alan> Hello, Alan here.\n  Nice to meet you! You said: 'Hello, Alan here.'." in out
    assert (
        "ada> Do you remember me?\n  This is message 2 of our chat. "
        "You first said: 'Hi, I am Ada.'.  (5 messages)"
    ) in out


# --- with a key (FakeOpenAIServer as OpenAI) ------------------------------------------------

ONLINE: list[tuple[str, list[str], list[Reply | str], str]] = [
    (
        "weather_bot.py", [],
        [tool_call_reply(("get_weather", {"city": "Paris"})),
         text_reply(["It is 14°C ", "with light rain."])],
        "assistant> It is 14°C with light rain.",
    ),
    (
        "structured_output.py", [],
        ['{"name": "Ada Lovelace", "born": 1815, "city": "London", "occupation": "mathematician"}'],
        '"born": 1815',
    ),
    (
        "parallel_tools.py", [],
        [tool_call_reply(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lima"}),
                         ("get_local_time", {"city": "Tokyo"})),
         "Paris 15°C, Lima 14°C, Tokyo 21:00."],
        "3 tool calls:",
    ),
    (
        "approval_bot.py", ["--no"],
        [tool_call_reply(("delete_file", {"path": "notes.txt"})), "I kept notes.txt."],
        "assistant> I kept notes.txt.\nrun completed; notes.txt exists: True; 4 messages",
    ),
    (
        "backend_service.py", ["--selftest"],
        ["Hello Ada!", "Hello Alan!", "Yes, you are Ada."],
        "ada> Do you remember me?\n  Yes, you are Ada.  (5 messages)",
    ),
]


@pytest.mark.parametrize(("script", "args", "replies", "expected"), ONLINE,
                         ids=[case[0] for case in ONLINE])
def test_example_with_a_key_uses_openai(
    script: str, args: list[str], replies: list[Reply | str], expected: str
) -> None:
    with FakeOpenAIServer(replies) as server:
        out = _run(script, *args, env_extra={
            "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url,
        })
        bodies = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    assert expected in out
    assert len(bodies) == len(replies)
    assert all(body["model"] == "gpt-4o-mini" for body in bodies)
    if script == "weather_bot.py":
        assert bodies[0]["stream"] is True and "tool_choice" not in bodies[0]
    if script == "backend_service.py":
        # The user's id goes out hashed, never as the name.
        users = [body.get("user") or body.get("safety_identifier") for body in bodies]
        assert all(u and len(u) == 64 and "ada" not in u for u in users)


# --- the README ------------------------------------------------------------------------------


def test_readme_examples_run_against_an_openai_compatible_server(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S)
    assert len(blocks) == 2
    example, configuration = blocks
    assert len(example.strip().splitlines()) <= 15
    (tmp_path / "readme_example.py").write_text(example + "\n" + configuration)
    replies = [tool_call_reply(("get_weather", {"city": "Paris"})),
               "It is 14°C with light rain in Paris."]
    with FakeOpenAIServer(replies) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(PYTHONPATH=str(REPO), OPENAI_API_KEY=server.api_key,
                   OPENAI_BASE_URL=server.base_url, AZURE_OPENAI_API_KEY="azure-placeholder")
        done = subprocess.run([sys.executable, str(tmp_path / "readme_example.py")],
                              capture_output=True, text=True, env=env, timeout=60)
        tool_message = server.requests[1].body["messages"][-1]
    assert done.returncode == 0, done.stderr
    assert done.stdout == "It is 14°C with light rain in Paris.\n"
    assert json.loads(tool_message["content"]) == {
        "city": "Paris", "temperature_c": 14, "conditions": "light rain"
    }
