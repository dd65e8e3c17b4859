"""What requests cost in US dollars: the price of a :class:`~agentkit.Usage` per model.

Prices come from your own overrides (:func:`set_price`, or ``prices=``) first, then from
the maintained price table of the ``genai-prices`` package, imported on first use only
(it takes most of a second to load, so ``import agentkit`` never pays for it). A model
with no known price costs ``None``, never 0: an unknown cost is not a free one.

The loop prices every response it receives (``result.usage.cost_usd``) and checks
``UsageLimits(max_cost_usd=...)`` before each request against the worst case of that
request (:func:`worst_case_cost`), so a budget is never overshot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit.errors import ConfigurationError
from agentkit.usage import Usage

if TYPE_CHECKING:
    from agentkit.models.base import ModelRequest

__all__ = [
    "Price",
    "cost",
    "price_of",
    "priced",
    "request_bytes",
    "set_price",
    "worst_case_cost",
]

logger = logging.getLogger("agentkit")

_PER_TOKEN = 1e-6  # prices are per million tokens
# A rate: one price per million tokens, or (base, ((start, price), ...)) where crossing a
# tier's start (in input tokens) applies that tier's price to every token, as providers do.
Rate = float | tuple[float, tuple[tuple[int, float], ...]]


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices, in US dollars per million tokens.

    Attributes:
        input: Prompt tokens (those not read from the provider's prompt cache).
        output: Generated tokens.
        cached_input: Prompt tokens read from the prompt cache (default: ``input``).
        reasoning: Reasoning tokens, counted in the output tokens (default: ``output``).
        max_output_tokens: The most tokens one response may have; used for a budget's
            worst case when ``ModelSettings.max_tokens`` is not set.
        context_window: The model's context size in tokens; without ``max_output_tokens``
            a response is at most the window minus its prompt.
    """

    input: Rate
    output: Rate
    cached_input: Rate | None = None
    reasoning: Rate | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None


_overrides: dict[str, Price] = {}
_table: dict[str, Price | None] = {}  # genai-prices lookups, by model name
_table_lock = threading.Lock()


def set_price(model: str, price: Price | None) -> None:
    """Set (or with ``None`` remove) the price of ``model`` for every run in this process;
    it wins over the price table. For your own or fine-tuned models, or negotiated rates."""
    if price is None:
        _overrides.pop(model, None)
    else:
        _overrides[model] = price


def price_of(
    model: str, *, prices: Mapping[str, Price] | None = None, table: bool = True
) -> Price | None:
    """The price of ``model``: from ``prices``, then :func:`set_price`, then (unless
    ``table=False``) the price table of ``genai-prices``; None when none knows it."""
    if prices is not None and model in prices:
        return prices[model]
    override = _overrides.get(model)
    if override is not None or not table:
        return override
    try:
        return _table[model]
    except KeyError:
        pass
    with _table_lock:
        if model not in _table:
            _table[model] = _lookup(model)
        return _table[model]


def cost(
    usage: Usage, model: str, *, prices: Mapping[str, Price] | None = None, table: bool = True
) -> float | None:
    """What ``usage`` cost on ``model`` in US dollars, or None when the price is unknown.

    Cached input tokens (``usage.cached_tokens``) are part of the input tokens and paid at
    the cached rate; reasoning tokens (``usage.reasoning_tokens``) are part of the output
    tokens and paid at the reasoning rate.
    """
    price = price_of(model, prices=prices, table=table)
    if price is None:
        return None
    # getattr: these counts are filled by the backends that report them (0 otherwise).
    cached = min(getattr(usage, "cached_tokens", 0), usage.input_tokens)
    reasoning = min(getattr(usage, "reasoning_tokens", 0), usage.output_tokens)
    tier = usage.input_tokens
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    reasoning_rate = price.reasoning if price.reasoning is not None else price.output
    return _PER_TOKEN * (
        (usage.input_tokens - cached) * _rate(price.input, tier)
        + cached * _rate(cached_rate, tier)
        + (usage.output_tokens - reasoning) * _rate(price.output, tier)
        + reasoning * _rate(reasoning_rate, tier)
    )


def priced(
    usage: Usage, model: str, *, prices: Mapping[str, Price] | None = None, table: bool = True
) -> Usage:
    """``usage`` with ``cost_usd`` set (unless the backend already reported a cost)."""
    if usage.cost_usd is not None or not usage.requests:
        return usage
    value = cost(usage, model, prices=prices, table=table)
    return usage if value is None else dataclasses.replace(usage, cost_usd=value)


def worst_case_cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    """The most a request of ``input_tokens`` (none cached) and up to ``output_tokens``
    can cost: every output token at the dearer of the output and reasoning rates."""
    reasoning = price.reasoning if price.reasoning is not None else price.output
    out = max(_rate(price.output, input_tokens), _rate(reasoning, input_tokens))
    return _PER_TOKEN * (input_tokens * _rate(price.input, input_tokens) + output_tokens * out)


def request_bytes(request: ModelRequest) -> int:
    """An upper bound of the prompt tokens of ``request``: its UTF-8 size in bytes (a
    token is at least one byte) plus a margin per message for the chat template."""
    size = len(json.dumps([t.to_openai() for t in request.tools]).encode()) if request.tools else 0
    if request.response_format is not None:
        size += len(json.dumps(request.response_format).encode())
    for message in request.messages:
        size += 16 + len(json.dumps(message.to_openai(), ensure_ascii=False).encode())
    return size


def budget_problem(
    max_cost_usd: float, spent: float | None, model: str, request: ModelRequest,
    *, prices: Mapping[str, Price] | None = None, table: bool = True,
) -> str | None:  # fmt: skip
    """Why sending ``request`` to ``model`` could pass the budget, or None if it cannot."""
    price = price_of(model, prices=prices, table=table)
    if price is None:
        raise ConfigurationError(unpriced_message(model))
    input_tokens = request_bytes(request)
    output_tokens = request.settings.max_tokens or price.max_output_tokens
    if output_tokens is None and price.context_window is not None:
        output_tokens = max(price.context_window - input_tokens, 0)
    if output_tokens is None:
        raise ConfigurationError(
            f"UsageLimits(max_cost_usd={max_cost_usd:g}) needs the most output tokens of a "
            f"request to {model!r}, and neither ModelSettings(max_tokens=...) nor the price "
            "of the model says it; set ModelSettings(max_tokens=...), or "
            "Price(max_output_tokens=...) with agentkit.pricing.set_price"
        )
    worst = worst_case_cost(price, input_tokens, output_tokens)
    so_far = spent or 0.0
    if so_far + worst <= max_cost_usd:
        return None
    return (
        f"the next request to {model!r} could cost up to ${worst:.6f} (at most "
        f"{input_tokens} input and {output_tokens} output tokens) and ${so_far:.6f} is spent "
        f"already, over max_cost_usd={max_cost_usd:g}; raise UsageLimits(max_cost_usd=...), "
        "lower ModelSettings(max_tokens=...) or shorten the conversation"
    )


def unpriced_message(model: str) -> str:
    """The error text for a budget on a model with no known price."""
    return (
        f"UsageLimits(max_cost_usd=...) is set but model {model!r} has no known price, so "
        "the budget could not be kept; give it one with agentkit.pricing.set_price("
        f"{model!r}, Price(input=..., output=...)) (dollars per million tokens), install "
        "agentkit[pricing] for the maintained price table, or drop max_cost_usd"
    )


def _rate(rate: Rate, input_tokens: int) -> float:
    if isinstance(rate, tuple):
        base, tiers = rate
        for start, tier_price in tiers:
            if input_tokens > start:
                base = tier_price
        return base
    return rate


def _lookup(model: str) -> Price | None:
    from datetime import datetime, timezone

    try:
        from genai_prices import data_snapshot, types
    except ImportError:
        logger.warning(
            "pricing: the genai-prices package is not installed, so model %r has no price; "
            "install agentkit[pricing] or use agentkit.pricing.set_price", model,
        )  # fmt: skip
        return None
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    except LookupError:
        return None
    table_price = info.get_prices(datetime.now(timezone.utc))

    def rate(value: Any) -> Rate | None:
        if value is None:
            return None
        if isinstance(value, types.TieredPrices):
            return (float(value.base), tuple((t.start, float(t.price)) for t in value.tiers))
        return float(value)

    input_rate, output_rate = rate(table_price.input_mtok), rate(table_price.output_mtok)
    if input_rate is None or output_rate is None:
        return None  # not a token-priced chat model (images, audio, ...)
    return Price(
        input=input_rate,
        output=output_rate,
        cached_input=rate(table_price.cache_read_mtok),
        context_window=info.context_window,
    )
