"""Messages and their OpenAI wire form (agentkit/messages.py)."""

from __future__ import annotations

import json

import pytest

from agentkit import ConfigurationError, Message, ToolCall
from agentkit.messages import from_openai, to_openai

THREAD = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "14°C"},
    {"role": "tool", "tool_call_id": "c2", "content": "20°C"},
    {"role": "assistant", "content": "Paris 14°C, Rome 20°C."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks"}], "name": "ada"},
]


def test_a_wire_thread_round_trips_exactly() -> None:
    messages = from_openai(THREAD)
    assert to_openai(messages) == THREAD
    # and survives JSON, as when stored in a database
    assert to_openai(from_openai(json.loads(json.dumps(to_openai(messages))))) == THREAD


def test_typed_fields_are_parsed() -> None:
    assistant = from_openai(THREAD)[2]
    assert assistant.text == "Checking."
    assert assistant.tool_calls == (
        ToolCall("c1", "get_weather", '{"city": "Paris"}'),
        ToolCall("c2", "get_weather", '{"city": "Rome"}'),
    )
    assert assistant.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    assert from_openai(THREAD)[-1].text == "Thanks"


def test_constructors_match_the_wire_shapes() -> None:
    assert Message.user("hi").to_openai() == {"role": "user", "content": "hi"}
    assert Message.assistant(None, [ToolCall("x", "f")]).to_openai() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "x", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}],
    }
    # is_error is agentkit's own bookkeeping and never goes on the wire
    assert Message.tool("x", "boom", name="f", is_error=True).to_openai() == {
        "role": "tool", "content": "boom", "tool_call_id": "x",
    }


def test_arguments_sent_as_an_object_become_json_text() -> None:
    message = Message.from_openai(
        {"role": "assistant", "tool_calls": [
            {"id": "a", "function": {"name": "f", "arguments": {"n": 1}}}]}
    )
    assert message.tool_calls[0].arguments == '{"n":1}'


def test_empty_arguments_parse_as_no_arguments() -> None:
    assert ToolCall("a", "f", "").parsed_arguments() == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"role": "robot", "content": "x"}, "role must be one of"),
        ({"role": "user", "content": 5}, "content must be a string"),
        ({"role": "tool", "content": "x"}, "needs the 'tool_call_id'"),
        ("hello", "a message must be a dict"),
    ],
)
def test_bad_wire_messages_raise_clear_errors(raw: object, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        Message.from_openai(raw)  # type: ignore[arg-type]
