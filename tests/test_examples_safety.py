"""examples/guarded_support_bot.py runs offline, and with a key against a FakeOpenAIServer."""

from __future__ import annotations

from test_examples import _run

from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply


def test_guarded_support_bot_offline_blocks_fences_caches_and_keeps_the_budget() -> None:
    out = _run("guarded_support_bot.py")
    assert "[model: acme-support]" in out
    assert "blocked by no_secrets: ['OpenAI-style key']; 0 requests sent" in out
    assert 'the model read: <untrusted-content source="tool:fetch_page" warning="possible ' in out
    assert "(The page also held an instruction, which I ignored.)" in out
    assert "2 requests, $0.001080" in out  # 2 x (900 x $0.5 + 60 x $1.5) per million
    assert "0 requests, 2 cache hits, $0.000000" in out
    assert "stopped before sending: 0 requests; the next request to 'acme-support' could " in out
    assert "sk-proj-x" not in out.split("\n", 2)[2]  # the key is never repeated


def test_guarded_support_bot_with_a_key_prices_gpt_4o_mini() -> None:
    replies = [
        tool_call_reply(("fetch_page", {"url": "https://help.acme.test/returns"}),
                        usage={"prompt_tokens": 1000, "completion_tokens": 20}),
        text_reply("Within 30 days.", usage={"prompt_tokens": 1200, "completion_tokens": 10}),
    ]
    with FakeOpenAIServer(replies) as server:
        out = _run("guarded_support_bot.py", env_extra={
            "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url})
        sent = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    assert "[model: gpt-4o-mini]" in out and "bot> Within 30 days." in out
    assert "2 requests, $0.000348" in out  # (2200 x $0.15 + 30 x $0.60) per million
    assert "0 requests, 2 cache hits, $0.000000" in out
    assert len(sent) == 2 and len(sent[0]["safety_identifier"]) == 64
    assert "untrusted-content" in sent[1]["messages"][-1]["content"]
