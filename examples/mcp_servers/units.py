"""A small MCP server written with the official MCP Python SDK: unit conversions.

examples/mcp_tools.py starts it over stdio; any MCP client can (``python units.py``).
"""

from mcp.server import mcpserver
from mcp.server.mcpserver.exceptions import ToolError

server = mcpserver.MCPServer("units")

FACTORS = {  # to metres, grams or litres
    "m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048,
    "g": 1.0, "kg": 1000.0, "lb": 453.59237,
    "l": 1.0, "gal": 3.785411784,
}  # fmt: skip
KINDS = {"m": "length", "km": "length", "mi": "length", "ft": "length",
         "g": "mass", "kg": "mass", "lb": "mass", "l": "volume", "gal": "volume"}


@server.tool()
def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units of the same kind (see list_units).

    A ToolError's message reaches the model (other exceptions stay on the server).
    """
    for unit in (from_unit, to_unit):
        if unit not in FACTORS:
            raise ToolError(f"unknown unit {unit!r}; call list_units")
    if KINDS[from_unit] != KINDS[to_unit]:
        raise ToolError(f"cannot convert {KINDS[from_unit]} to {KINDS[to_unit]}")
    result = value * FACTORS[from_unit] / FACTORS[to_unit]
    return f"{value:g} {from_unit} = {result:.3f} {to_unit}"


@server.tool()
def list_units() -> dict[str, list[str]]:
    """The units convert knows, by kind."""
    kinds: dict[str, list[str]] = {}
    for unit, kind in KINDS.items():
        kinds.setdefault(kind, []).append(unit)
    return kinds


if __name__ == "__main__":
    server.run()
