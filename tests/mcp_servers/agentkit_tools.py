"""agentkit tools served by `agentkit mcp serve` in tests/test_mcp_serve.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agentkit import RunContext, tool


class Forecast(BaseModel):
    city: str
    temperature_c: float


@tool
def add(a: int, b: int = 2) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
async def forecast(city: str, unit: Literal["c", "f"] = "c") -> Forecast:
    """Tomorrow's forecast for a city."""
    return Forecast(city=city, temperature_c=18.5)


@tool
def who_calls(ctx: RunContext[None]) -> str:
    """The tool name the run context carries."""
    return f"called as {ctx.tool_name}"


@tool
def broken() -> str:
    """Always raises."""
    raise RuntimeError("the disk is on fire")


@tool(needs_approval=True)
def delete_everything() -> str:
    """Needs a person's approval: an MCP server cannot ask for it."""
    return "deleted"


tools = [add, forecast, who_calls, broken]
