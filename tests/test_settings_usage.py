"""ModelSettings merging and Usage / UsageLimits arithmetic."""

from __future__ import annotations

import pytest

from agentkit import ModelSettings, Usage, UsageLimits


def test_merge_applies_only_the_fields_the_override_sets() -> None:
    base = ModelSettings(temperature=0.2, max_tokens=100, tool_choice="required")
    merged = base.merge(ModelSettings(max_tokens=50, seed=7))
    assert merged == ModelSettings(temperature=0.2, max_tokens=50, tool_choice="required", seed=7)
    assert base.merge(None) is base


def test_max_parallel_tools_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_parallel_tools must be at least 1, got 0"):
        ModelSettings(max_parallel_tools=0)


def test_usage_adds_up() -> None:
    total = Usage(1, 10, 5, 15, 2) + Usage(2, 1, 1, 2, 1)
    assert total == Usage(3, 11, 6, 17, 3)


def test_limits_say_what_would_be_broken() -> None:
    limits = UsageLimits(max_requests=2, max_total_tokens=100, max_tool_calls=3)
    assert limits.check_before_request(Usage(requests=1, total_tokens=50)) is None
    assert "max_requests=2" in str(limits.check_before_request(Usage(requests=2)))
    assert "max_total_tokens=100" in str(
        limits.check_before_request(Usage(requests=1, total_tokens=100))
    )
    assert limits.check_tool_calls(Usage(tool_calls=1), 2) is None
    assert "max_tool_calls=3" in str(limits.check_tool_calls(Usage(tool_calls=2), 2))
