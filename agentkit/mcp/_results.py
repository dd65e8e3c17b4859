"""An MCP ``CallToolResult`` as the text a model reads.

Chat-completions tool messages carry text only, so non-text blocks (images, audio,
binary resources) are described in a line the model can read; the whole result stays
available to code as ``ToolResult.value``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["result_text"]


def _size(data: str) -> str:
    raw = len(data) * 3 // 4  # base64 -> bytes, close enough for a label
    return f"{raw} bytes" if raw < 1024 else f"{raw / 1024:.1f} kB"


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_size(block.data)}]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return str(text)
        mime = getattr(resource, "mime_type", None) or "binary"
        return f"[resource {resource.uri}: {mime}, {_size(getattr(resource, 'blob', ''))}]"
    if kind == "resource_link":
        about = f" - {block.description}" if getattr(block, "description", None) else ""
        return f"[resource link {block.uri}: {block.name}{about}]"
    return f"[{kind} content]"


def result_text(result: Any) -> str:
    """The text of a ``CallToolResult``: its content blocks one per line; the structured
    content as JSON when there is no content block."""
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return "\n".join(parts)
