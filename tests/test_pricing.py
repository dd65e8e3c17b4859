"""Prices and budgets (agentkit/pricing.py, UsageLimits(max_cost_usd=...))."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import genai_prices
import pytest

from agentkit import (
    Agent,
    ConfigurationError,
    Message,
    ModelSettings,
    Usage,
    UsageLimitExceeded,
    UsageLimits,
    tool,
)
from agentkit.models import ModelRequest, ModelResponse, OpenAIChatModel
from agentkit.pricing import Price, cost, price_of, set_price, worst_case_cost
from agentkit.testing import FunctionModel, ScriptedModel, tool_call_response
from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio

MINE = Price(input=2.0, output=8.0, cached_input=0.5, reasoning=10.0)


@pytest.fixture
def my_model_price() -> Iterator[Price]:
    set_price("my-model", MINE)
    yield MINE
    set_price("my-model", None)


@tool
def step(n: int) -> str:
    """One step of work.

    Args:
        n: The step number.
    """
    return f"step {n} done"


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(1, input_tokens, output_tokens, input_tokens + output_tokens)


# --- prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens"),
    [("gpt-4o-mini", 1200, 300), ("gpt-4o-2024-08-06", 50_000, 2_000),
     ("gemini-2.5-pro", 300_000, 1_000), ("gemini-2.5-pro", 100_000, 1_000)],
)  # fmt: skip
def test_table_prices_agree_with_genai_prices(
    model: str, input_tokens: int, output_tokens: int
) -> None:
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens), model
    ).total_price
    mine = cost(_usage(input_tokens, output_tokens), model)
    assert mine is not None
    assert mine == pytest.approx(float(expected), rel=1e-9)


def test_unknown_models_cost_none_and_overrides_win(my_model_price: Price) -> None:
    assert cost(_usage(10, 10), "no-such-model-anywhere") is None
    assert price_of("no-such-model-anywhere") is None
    # 1M input at $2 + 1M output at $8
    assert cost(_usage(1_000_000, 1_000_000), "my-model") == pytest.approx(10.0)
    assert cost(_usage(1_000_000, 0), "gpt-4o-mini", prices={"gpt-4o-mini": MINE}) == 2.0
    set_price("gpt-4o-mini", Price(input=1, output=1))
    try:
        assert cost(_usage(1_000_000, 0), "gpt-4o-mini") == pytest.approx(1.0)
    finally:
        set_price("gpt-4o-mini", None)
    assert cost(_usage(1_000_000, 0), "gpt-4o-mini") == pytest.approx(0.15)


def test_cached_and_reasoning_tokens_are_paid_at_their_rates(my_model_price: Price) -> None:
    # Usage.cached_tokens / reasoning_tokens come with the models issue; cost() reads
    # them by name, so a stand-in with those counts checks the arithmetic now.
    usage: Any = SimpleNamespace(input_tokens=1_000_000, output_tokens=1_000_000,
                                 cached_tokens=400_000, reasoning_tokens=250_000)
    expected = 0.6 * 2.0 + 0.4 * 0.5 + 0.75 * 8.0 + 0.25 * 10.0
    assert cost(usage, "my-model") == pytest.approx(expected)


def test_usage_sums_keep_unknown_costs_unknown() -> None:
    priced, unpriced, hit = Usage(1, cost_usd=0.25), Usage(1), Usage(0, cost_usd=0.0, cache_hits=1)
    assert (priced + priced).cost_usd == 0.5
    assert (priced + unpriced).cost_usd is None and (unpriced + priced).cost_usd is None
    assert (priced + hit).cost_usd == 0.25 and (Usage() + hit).cost_usd == 0.0
    assert Usage().cost_usd is None and (Usage() + Usage(tool_calls=2)).cost_usd is None


async def test_a_run_reports_its_cost_over_http() -> None:
    with FakeOpenAIServer([
        tool_call_reply(("step", {"n": 1}), usage={"prompt_tokens": 1000, "completion_tokens": 50}),
        text_reply("done", usage={"prompt_tokens": 2000, "completion_tokens": 100}),
    ]) as server:  # fmt: skip
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
        result = await Agent(model=model, tools=[step]).run("go")
    expected = (3000 * 0.15 + 150 * 0.6) / 1e6
    assert result.usage.cost_usd == pytest.approx(expected)
    assert result.state is not None
    assert json.loads(result.state.to_json())["usage"]["cost_usd"] == pytest.approx(expected)


async def test_test_doubles_are_priced_by_overrides_only(my_model_price: Price) -> None:
    scripted = ScriptedModel([ModelResponse(
        Message.assistant("hi"), usage=_usage(1_000_000, 0)
    )], name="gpt-4o-mini")  # fmt: skip
    assert (await Agent(model=scripted).run("x")).usage.cost_usd is None
    mine = ScriptedModel([ModelResponse(
        Message.assistant("hi"), usage=_usage(1_000_000, 0)
    )], name="my-model")  # fmt: skip
    assert (await Agent(model=mine).run("x")).usage.cost_usd == pytest.approx(2.0)


# --- budgets -----------------------------------------------------------------------------------


async def test_a_budget_on_an_unpriced_model_is_a_configuration_error_before_any_request() -> None:
    model = FunctionModel(lambda request: "never", name="house-model")
    agent = Agent(model=model, usage_limits=UsageLimits(max_cost_usd=1.0))
    with pytest.raises(ConfigurationError, match="'house-model' has no known price") as caught:
        await agent.run("hi")
    assert model.requests == [] and "set_price" in str(caught.value)


async def test_a_budget_needs_a_bound_on_output_tokens(my_model_price: Price) -> None:
    model = FunctionModel(lambda request: "never", name="my-model")
    agent = Agent(model=model, usage_limits=UsageLimits(max_cost_usd=1.0))
    with pytest.raises(ConfigurationError, match=r"ModelSettings\(max_tokens=...\)"):
        await agent.run("hi")
    assert model.requests == []


async def test_a_first_request_whose_worst_case_passes_the_budget_is_refused_over_http() -> None:
    with FakeOpenAIServer([text_reply("never")]) as server:
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
        agent = Agent(model=model, settings=ModelSettings(max_tokens=10_000),
                      usage_limits=UsageLimits(max_cost_usd=0.001))  # fmt: skip
        with pytest.raises(UsageLimitExceeded, match="could cost up to") as caught:
            await agent.run("hi")
        assert server.requests == []
    # 10k output tokens at $0.60/M is $0.006: over the $0.001 budget before any request.
    assert caught.value.usage is not None and caught.value.usage.requests == 0
    # The context window bounds the output when max_tokens is not set.
    assert price_of("gpt-4o-mini") is not None
    assert price_of("gpt-4o-mini").context_window == 128_000  # type: ignore[union-attr]


async def test_a_budget_is_never_exceeded_across_randomised_runs(my_model_price: Price) -> None:
    rng = random.Random(1234)
    max_tokens = 400
    stopped = completed = 0
    for _ in range(200):
        budget = rng.uniform(0.002, 0.05)
        calls = iter(range(rng.randint(0, 30)))

        def answer(request: ModelRequest, calls: Iterator[int] = calls) -> ModelResponse:
            # A server never bills more prompt tokens than prompt bytes, nor more output
            # tokens than max_tokens; within that, anything.
            prompt_bytes = len(json.dumps([m.to_openai() for m in request.messages]).encode())
            usage = Usage(1, rng.randint(1, prompt_bytes), rng.randint(0, max_tokens))
            usage.total_tokens = usage.input_tokens + usage.output_tokens
            n = next(calls, None)
            reply = tool_call_response(("step", {"n": n})) if n is not None else None
            if reply is None:
                return ModelResponse(Message.assistant("done"),
                                     usage=usage)  # fmt: skip
            return ModelResponse(reply.message, "tool_calls", usage)

        agent = Agent(
            model=FunctionModel(answer, name="my-model"), tools=[step], max_turns=40,
            settings=ModelSettings(max_tokens=max_tokens),
            usage_limits=UsageLimits(max_cost_usd=budget),
        )  # fmt: skip
        try:
            result = await agent.run("work " * rng.randint(1, 200))
            spent: Any = result.usage.cost_usd
            completed += 1
        except UsageLimitExceeded as exc:
            assert exc.usage is not None
            spent = exc.usage.cost_usd or 0.0
            stopped += 1
        assert spent <= budget, (spent, budget)
    # Both outcomes happened, so the bound was tested where it bites.
    assert stopped > 20 and completed > 20


def test_worst_case_uses_the_dearer_output_rate() -> None:
    assert worst_case_cost(MINE, 1_000_000, 1_000_000) == pytest.approx(2.0 + 10.0)
    tiered = Price(input=(1.0, ((200_000, 2.0),)), output=4.0)
    assert worst_case_cost(tiered, 300_000, 0) == pytest.approx(0.6)


async def test_a_run_with_tool_calls_stops_at_the_budget_with_its_history(
    my_model_price: Price,
) -> None:
    model = ScriptedModel([
        ModelResponse(tool_call_response(("step", {"n": i})).message, "tool_calls",
                      Usage(1, 1000, 100, 1100))
        for i in range(10)
    ], name="my-model")  # fmt: skip
    agent = Agent(model=model, tools=[step], max_turns=20,
                  settings=ModelSettings(max_tokens=100),
                  usage_limits=UsageLimits(max_cost_usd=0.012))  # fmt: skip
    with pytest.raises(UsageLimitExceeded) as caught:
        await agent.run("go")
    usage = caught.value.usage
    assert usage is not None and usage.cost_usd is not None
    assert 0 < usage.cost_usd <= 0.012 and usage.requests >= 2
    assert caught.value.messages[-1].role == "tool"  # every call answered: resumable
