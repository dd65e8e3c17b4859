"""examples/triage_bot.py: offline with the bundled model, and with a key against a
FakeOpenAIServer standing in for OpenAI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env_extra: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTKIT_MODEL"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(env_extra or {})
    done = subprocess.run([sys.executable, str(REPO / "examples" / script), *args],
                          capture_output=True, text=True, env=env, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.local_model
def test_triage_bot_offline_hands_the_question_to_an_agent_that_answers() -> None:
    out = _run("triage_bot.py")
    assert "[model: smollm2-135m]" in out
    match = re.search(r"handoff: triage -> (billing|support)\n\1> (.+)\n", out)
    assert match is not None, out
    target, answer = match.groups()
    assert "[triage, turn 1: calls transfer_to_" + target + "]" in out
    assert answer.strip()
    assert f"answered by {target} in 2 turns" in out


def test_triage_bot_with_a_key_routes_to_support() -> None:
    replies = [tool_call_reply(("transfer_to_support", {"reason": "a crash"})),
               text_reply(["Reinstall the app, ", "then sign in again."])]
    with FakeOpenAIServer(replies) as server:
        out = _run("triage_bot.py", "My app crashes on start", env_extra={
            "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url,
        })
        bodies = [r.body for r in server.requests]
    assert "handoff: triage -> support\nsupport> Reinstall the app, then sign in again.\n" in out
    assert "answered by support in 2 turns" in out
    first, second = bodies
    assert {t["function"]["name"] for t in first["tools"]} == {"transfer_to_billing",
                                                                "transfer_to_support"}
    # Support is sent its own instructions and the question, not the routing call.
    assert second["messages"][0]["content"].startswith("You help with technical problems")
    assert [m["role"] for m in second["messages"]] == ["system", "user"]
    assert "tools" not in second
