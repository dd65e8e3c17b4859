"""examples/search_and_ask.py runs as a script: offline (local embedder and model), and
with a key against a FakeOpenAIServer standing in for OpenAI."""

from __future__ import annotations

import re

import pytest
from test_examples import _run

from agentkit.testing.fake_openai import FakeOpenAIServer


@pytest.mark.local_model
def test_search_and_ask_offline_picks_the_returns_note_and_answers() -> None:
    out = _run("search_and_ask.py")
    ranked = re.findall(r"^  (0\.\d{3})  (\w+):", out, re.M)
    assert [name for _, name in ranked] == ["Returns"]
    answer = re.search(r"assistant> (.+)  \[model: smollm2-135m\]", out)
    assert answer is not None and answer.group(1).strip()


def test_search_and_ask_with_a_key_sends_the_best_notes_to_the_model() -> None:
    with FakeOpenAIServer(["Gift cards are welcome."]) as server:
        out = _run("search_and_ask.py", "Can I pay with a gift card?", env_extra={
            "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url,
        })
        (body,) = [r.body for r in server.requests]
    ranked = re.findall(r"^  (0\.\d{3})  (\w+):", out, re.M)
    assert ranked[0][1] == "Payment" and len(ranked) == 2
    assert ranked[0][0] >= ranked[1][0]
    system = body["messages"][0]
    assert system["role"] == "system" and "Gift cards never expire" in system["content"]
    assert "assistant> Gift cards are welcome.  [model: gpt-4o-mini]" in out
