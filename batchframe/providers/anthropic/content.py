"""A message's content blocks -> (text, tool_use JSON): the one extraction both result parse paths use."""

from __future__ import annotations

from typing import Any

import orjson


def message_content(blocks: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """Text blocks joined, and the tool_use input as JSON (a JSON list when there are several).

    Examples
    --------
    >>> message_content([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    ('ab', None)
    >>> message_content([{"type": "tool_use", "input": {"x": 1}}])
    (None, '{"x":1}')
    """
    texts, tools = [], []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            texts.append(text if isinstance(text, str) else "")
        elif kind == "tool_use":
            tools.append(block.get("input"))
    text = "".join(texts) if texts else None
    if not tools:
        return text, None
    return text, orjson.dumps(tools[0] if len(tools) == 1 else tools).decode()
