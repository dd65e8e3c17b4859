"""The local model's reply schema, prompt rendering and reply conversion (no model needed)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from agentkit.errors import ConfigurationError, ContextLengthExceeded, ModelError
from agentkit.messages import Message, ToolCall
from agentkit.models._local_schema import (
    AnswerStreamer,
    fit_to_context,
    new_call_id,
    parse_reply,
    plan_reply,
    readable_result,
    render_messages,
)
from agentkit.models.base import ToolDefinition

WEATHER = ToolDefinition(
    "get_weather",
    "Get the current weather for a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"enum": ["c", "f"]},
        },
        "required": ["city"],
        "additionalProperties": False,
    },
)
ADD = ToolDefinition(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
# The shape pydantic produces for nested models: local definitions and $refs into them.
BOOK = ToolDefinition(
    "book",
    "Book a trip.",
    {
        "$defs": {"Place": {"type": "object", "properties": {"name": {"type": "string"}},
                            "required": ["name"]}},
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/Place"}},
        "required": ["to"],
    },
)


def valid(schema: dict[str, object], instance: object) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(instance)


def test_auto_accepts_each_tool_call_and_an_answer_only() -> None:
    schema = plan_reply([WEATHER, ADD], "auto", None).schema
    assert schema is not None
    assert valid(schema, {"tool": "get_weather", "arguments": {"city": "Paris"}})
    assert valid(schema, {"tool": "add", "arguments": {"a": 1, "b": 2}})
    assert valid(schema, {"answer": "hi"})
    assert not valid(schema, {"tool": "add", "arguments": {"a": "one", "b": 2}})
    assert not valid(schema, {"tool": "get_weather", "arguments": {}})
    assert not valid(schema, {"tool": "delete_all", "arguments": {}})
    assert not valid(schema, {"answer": "hi", "tool": "add"})


def test_required_drops_the_answer_and_a_name_keeps_one_tool() -> None:
    required = plan_reply([WEATHER, ADD], "required", None)
    assert required.schema is not None and not required.allow_answer
    assert not valid(required.schema, {"answer": "hi"})
    assert valid(required.schema, {"tool": "add", "arguments": {"a": 1, "b": 2}})

    named = plan_reply([WEATHER, ADD], "add", None)
    assert named.schema is not None and [t.name for t in named.tools] == ["add"]
    assert valid(named.schema, {"tool": "add", "arguments": {"a": 1, "b": 2}})
    assert not valid(named.schema, {"tool": "get_weather", "arguments": {"city": "Paris"}})
    assert not valid(named.schema, {"answer": "hi"})


def test_none_allows_only_an_answer() -> None:
    plan = plan_reply([WEATHER], "none", None)
    assert plan.schema is not None and plan.tools == ()
    assert valid(plan.schema, {"answer": "hi"})
    assert not valid(plan.schema, {"tool": "get_weather", "arguments": {"city": "Paris"}})


def test_unknown_tool_choice_names_the_available_tools() -> None:
    with pytest.raises(ConfigurationError, match=r"'nope'.*get_weather, add"):
        plan_reply([WEATHER, ADD], "nope", None)


def test_no_tools_means_free_text_or_the_output_schema() -> None:
    assert plan_reply([], "required", None).schema is None
    output = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": output}}
    plan = plan_reply([], None, fmt)
    assert plan.schema == output and not plan.protocol


def test_structured_output_with_tools_constrains_the_answer() -> None:
    output = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": output}}
    plan = plan_reply([ADD], "auto", fmt)
    assert plan.schema is not None and not plan.answer_is_text
    assert valid(plan.schema, {"answer": {"n": 3}})
    assert not valid(plan.schema, {"answer": "three"})
    message, finish = parse_reply('{"answer": {"n": 3}}', "stop", plan)
    assert json.loads(message.text) == {"n": 3} and finish == "stop"


def test_definitions_are_hoisted_and_refs_still_resolve() -> None:
    schema = plan_reply([BOOK, ADD], "auto", None).schema
    assert schema is not None
    assert "book__Place" in schema["$defs"]
    assert valid(schema, {"tool": "book", "arguments": {"to": {"name": "Rome"}}})
    assert not valid(schema, {"tool": "book", "arguments": {"to": {"city": "Rome"}}})


def test_tool_call_reply_becomes_a_tool_call_with_a_fresh_id() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    text = '{\n  "tool": "get_weather",\n  "arguments": {"city": "Paris"}\n}'
    first, finish = parse_reply(text, "stop", plan)
    second, _ = parse_reply(text, "stop", plan)
    assert finish == "tool_calls" and first.content is None
    (call,) = first.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert re.fullmatch(r"call_[0-9a-f]{24}", call.id)
    assert call.id != second.tool_calls[0].id


def test_answer_reply_becomes_text() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    message, finish = parse_reply('{"answer": "It is 14°C in Paris."}', "stop", plan)
    assert message.text == "It is 14°C in Paris." and not message.tool_calls
    assert finish == "stop"


def test_truncated_reply_is_passed_on_as_length() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    message, finish = parse_reply('{"answer": "It is', "length", plan)
    assert finish == "length" and message.text == '{"answer": "It is'


def test_broken_reply_raises_model_error() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    with pytest.raises(ModelError, match="not the JSON"):
        parse_reply("not json", "stop", plan)


def test_history_renders_for_a_toolless_template() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    messages = [
        Message.system("You are a weather bot."),
        Message.user("Weather in Paris?"),
        Message.assistant(None, [call]),
        Message.tool("call_1", '{"temperature_c": 14}'),
    ]
    rendered = render_messages(messages, plan)
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    system = rendered[0]["content"]
    assert system.startswith("You are a weather bot.")
    assert "get_weather: Get the current weather for a city." in system
    assert "city (string): City name." in system and 'unit ("c" | "f", optional)' in system
    assert json.loads(rendered[2]["content"]) == {
        "tool": "get_weather", "arguments": {"city": "Paris"}
    }
    # The result names its tool (looked up by call id), reads as sentences, and the
    # question is repeated after it.
    assert rendered[3]["content"].startswith("Result of get_weather: The temperature c is 14.")
    assert "Question: Weather in Paris?" in rendered[3]["content"]


def test_results_then_a_new_question_are_merged_without_the_hint() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    messages = [
        Message.user("Weather in Paris?"),
        Message.assistant(None, [call]),
        Message.tool("call_1", "boom", is_error=True),
        Message.user("Never mind."),
    ]
    rendered = render_messages(messages, plan)
    assert rendered[-1] == {
        "role": "user", "content": "Error from get_weather: boom\nNever mind."
    }


def test_fit_drops_oldest_turns_but_keeps_system_and_last() -> None:
    plan = plan_reply([WEATHER], "auto", None)
    rendered = [{"role": "system", "content": "s" * 30}]
    for i in range(10):
        rendered += [{"role": "user", "content": f"q{i} " + "x" * 90},
                     {"role": "assistant", "content": f"a{i} " + "y" * 90}]
    rendered.append({"role": "user", "content": "last"})
    kept, dropped = fit_to_context(rendered, plan, budget=200, chars_per_token=3.0)
    assert kept[0] == rendered[0] and kept[-1] == rendered[-1]
    assert kept[1]["role"] == "user" and dropped > 0
    assert len(kept) + dropped == len(rendered)
    assert kept == [rendered[0], *rendered[len(rendered) - len(kept) + 1:]]


def test_fit_names_the_tool_that_is_too_big() -> None:
    huge = ToolDefinition("encyclopedia", "x" * 5000, {"type": "object", "properties": {}})
    plan = plan_reply([WEATHER, huge], "auto", None)
    rendered = render_messages([Message.user("hi")], plan)
    with pytest.raises(ConfigurationError, match="'encyclopedia'"):
        fit_to_context(rendered, plan, budget=500, chars_per_token=3.0)


def test_fit_refuses_a_last_message_that_cannot_fit() -> None:
    plan = plan_reply([], None, None)
    rendered = [{"role": "user", "content": "x" * 3000}]
    with pytest.raises(ContextLengthExceeded, match="last message"):
        fit_to_context(rendered, plan, budget=100, chars_per_token=3.0)


def stream_all(pieces: list[str]) -> str:
    streamer = AnswerStreamer()
    return "".join(streamer.feed(p) for p in pieces)


def test_streamer_yields_the_decoded_answer_only() -> None:
    raw = '{\n  "answer"\n  : "It is 14\\u00b0C,\\n \\"wet\\" \\ud83c\\udf27 in Paris."\n}'
    expected = json.loads(raw)["answer"]
    # Every split point, including inside escapes and surrogate pairs.
    for cut in range(1, len(raw)):
        assert stream_all([raw[:cut], raw[cut:]]) == expected
    assert stream_all(list(raw)) == expected


def test_streamer_leaks_nothing_of_a_tool_call() -> None:
    raw = '{"tool": "get_weather", "arguments": {"city": "Paris", "answer": "x"}}'
    assert stream_all(list(raw)) == ""


def test_call_ids_are_unique() -> None:
    assert len({new_call_id() for _ in range(1000)}) == 1000


def test_flat_json_results_read_as_sentences_and_other_text_is_unchanged() -> None:
    sentences = readable_result('{"city": "Oslo", "rain": true}')
    assert sentences == "The city is Oslo. The rain is True."
    assert readable_result('{"nested": {"a": 1}}') == '{"nested": {"a": 1}}'
    assert readable_result("14°C and rain") == "14°C and rain"
    assert readable_result("{not json") == "{not json"


def test_a_repeated_answered_call_is_detected_so_the_model_is_made_to_answer() -> None:
    from agentkit.models.local import _repeats_an_answered_call

    call = ToolCall("call_1", "get_weather", '{"city": "Oslo"}')
    history = [Message.user("Weather in Oslo?"), Message.assistant(None, [call]),
               Message.tool("call_1", "rain")]
    again = Message.assistant(None, [ToolCall("call_2", "get_weather", '{ "city":"Oslo" }')])
    other = Message.assistant(None, [ToolCall("call_3", "get_weather", '{"city": "Bergen"}')])
    assert _repeats_an_answered_call(again, history)
    assert not _repeats_an_answered_call(other, history)
    assert not _repeats_an_answered_call(Message.assistant("It rains."), history)
    # Asked but not yet answered: running it is still useful.
    assert not _repeats_an_answered_call(again, history[:2])


def test_tool_descriptions_read_as_sentences_without_doubled_periods() -> None:
    from agentkit.models._local_schema import describe_tool

    line = describe_tool(WEATHER)
    assert ".." not in line
    assert line == (
        "- get_weather: Get the current weather for a city. Arguments: city (string): City "
        "name. unit (\"c\" | \"f\", optional)."
    )
    bare = ToolDefinition("ping", "Ping the server", {"type": "object", "properties": {}})
    assert describe_tool(bare) == "- ping: Ping the server. No arguments."
