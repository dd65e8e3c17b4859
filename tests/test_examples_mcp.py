"""examples/mcp_tools.py runs as a script: offline, and with a key against a
FakeOpenAIServer standing in for OpenAI."""

from __future__ import annotations

from test_examples import _run

from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply


def test_mcp_example_offline_uses_the_stdio_servers_tools() -> None:
    out = _run("mcp_tools.py", timeout=120)
    assert "tool units_convert: Convert a quantity between units of the same kind" in out
    assert "tool units_list_units: The units convert knows, by kind." in out
    assert '-> units_convert({"value": 42.195, "from_unit": "km", "to_unit": "mi"})' in out
    assert "<- 42.195 km = 26.219 mi" in out
    assert '<- { "length": [ "m", "km", "mi", "ft" ],' in out
    assert "!! Error executing tool convert: cannot convert mass to volume" in out
    assert "assistant> A marathon is 26.219 mi." in out


def test_mcp_example_with_a_key_asks_the_server() -> None:
    script = [
        tool_call_reply(("units_convert", {"value": 10, "from_unit": "mi", "to_unit": "km"})),
        text_reply("10 miles are 16.093 km."),
    ]
    with FakeOpenAIServer(script) as fake:
        out = _run("mcp_tools.py", timeout=120,
                   env_extra={"OPENAI_API_KEY": fake.api_key, "OPENAI_BASE_URL": fake.base_url})
        first = fake.requests[0].body
    assert "<- 10 mi = 16.093 km" in out
    assert "assistant> 10 miles are 16.093 km." in out
    names = sorted(t["function"]["name"] for t in first["tools"])
    assert names == ["units_convert", "units_list_units"]
