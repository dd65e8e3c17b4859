"""ModelSettings: the sampling and tool-calling knobs sent with each request."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ModelSettings", "ToolChoice"]

ToolChoice = Literal["auto", "required", "none"] | str
"""``"auto"``, ``"required"``, ``"none"``, or the name of one tool the model must call."""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Settings for model requests. ``None`` means "leave it to the server".

    Combine two with ``base.merge(override)``: fields set in ``override`` win.

    Attributes:
        temperature: Sampling temperature.
        top_p: Nucleus sampling mass.
        max_tokens: Most tokens the model may generate per request (sent as
            ``max_completion_tokens`` where the server wants that).
        stop: Stop sequences.
        presence_penalty: Presence penalty.
        frequency_penalty: Frequency penalty.
        logit_bias: Token id to bias.
        seed: Sampling seed, for servers that support reproducible sampling.
        response_format: A raw ``response_format`` dict; normally set by ``output_type``.
        tool_choice: ``"auto"``, ``"required"``, ``"none"`` or a tool name.
        reset_tool_choice: After a forced tool call ran, fall back to ``"auto"`` so a
            forced choice cannot loop forever.
        parallel_tool_calls: Whether the model may call several tools in one response.
        max_parallel_tools: How many tool calls of one response run at once.
        user: The end user's id (send a hash, see ``agentkit.models.hash_user_id``); sent
            as ``safety_identifier`` to OpenAI, as ``user`` to other servers.
        safety_identifier: The end user's id for OpenAI's abuse detection (a hash, never
            an e-mail); always sent as ``safety_identifier``, and wins over ``user`` there.
        prompt_cache_key: Groups requests that share a long prefix for OpenAI's
            server-side prompt cache (sent as ``prompt_cache_key``).
        extra_body: Server-specific fields merged into the request body.
        extra_headers: Extra HTTP headers for each request.
        timeout: Per-request timeout in seconds (overrides the model's default).
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tool_choice: ToolChoice | None = None
    reset_tool_choice: bool = True
    parallel_tool_calls: bool | None = None
    max_parallel_tools: int = 16
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    extra_body: dict[str, Any] | None = field(default=None)
    extra_headers: dict[str, str] | None = field(default=None, repr=False)
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.max_parallel_tools < 1:
            raise ValueError(
                f"ModelSettings.max_parallel_tools must be at least 1, got "
                f"{self.max_parallel_tools}"
            )

    def merge(self, override: ModelSettings | None) -> ModelSettings:
        """Return these settings with every field ``override`` sets (non-default) applied."""
        if override is None:
            return self
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(ModelSettings):
            value = getattr(override, f.name)
            if value != f.default:
                changes[f.name] = value
        return dataclasses.replace(self, **changes) if changes else self
