"""examples/mcp_tools.py runs as a script, offline. (With a key it is an ordinary agent
run: tests/test_mcp_everything.py drives MCP tools through the FakeOpenAIServer.)"""

from __future__ import annotations

from test_examples import _run


def test_mcp_example_offline_uses_the_stdio_servers_tools() -> None:
    out = _run("mcp_tools.py", timeout=120)
    assert "tool units_convert: Convert a quantity between units of the same kind" in out
    assert "tool units_list_units: The units convert knows, by kind." in out
    assert '-> units_convert({"value": 42.195, "from_unit": "km", "to_unit": "mi"})' in out
    assert "<- 42.195 km = 26.219 mi" in out
    assert '<- { "length": [ "m", "km", "mi", "ft" ],' in out
    assert "!! Error executing tool convert: cannot convert mass to volume" in out
    assert "assistant> A marathon is 26.219 mi." in out
