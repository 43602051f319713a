"""Plain-data helpers engines share: the text of a Messages request, and the echo token rule.

The token rule (used by the echo engine and by default for count_tokens): **a token is a run of
non-whitespace characters.** A request's input tokens are the tokens of its system prompt, of every text
block (or string content) and ``tool_result`` text of every message, and of every tool's name and
description. Images and documents count nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_WORD = re.compile(r"\S+")


def count_tokens(text: str) -> int:
    """Tokens of a text under the echo rule.

    Examples
    --------
    >>> count_tokens("Hello,  world!\\n ok")
    3
    """
    return len(text.split())


def cut_tokens(text: str, n: int) -> str:
    """The prefix of ``text`` holding its first ``n`` tokens (original spacing kept).

    Examples
    --------
    >>> cut_tokens("a  b c", 2)
    'a  b'
    """
    if n <= 0:
        return ""
    for i, match in enumerate(_WORD.finditer(text), start=1):
        if i == n:
            return text[: match.end()]
    return text


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or its text / tool_result blocks joined by newlines."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(content_text(block.get("content", "")))
    return "\n".join(parts)


def system_text(system: Any) -> str:
    """The system prompt as text (a string or a list of text blocks)."""
    return content_text(system) if system else ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last user message ("" if none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def input_tokens(params: Mapping[str, Any]) -> int:
    """Input tokens of a Messages request under the echo rule.

    Examples
    --------
    >>> input_tokens({"system": "Be brief.", "messages": [{"role": "user", "content": "Hi there"}]})
    4
    """
    total = count_tokens(system_text(params.get("system")))
    for message in params.get("messages") or ():
        total += count_tokens(content_text(message.get("content")))
    for tool in params.get("tools") or ():
        total += count_tokens(f"{tool.get('name', '')} {tool.get('description', '')}")
    return total
