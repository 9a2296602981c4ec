"""Server-sent events from an httpx response, as ``(event, data)`` pairs (imports nothing).

Both wire formats frame their streams as SSE: the OpenAI one as ``data: {...}`` lines ending with
``data: [DONE]``; the native one as blocks of ``id:N``, ``event:result``, ``:HTTP_STATUS/200`` and
``data:{...}``. A blank line ends a block; comment lines (``:...``) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """Each block's event name (``"message"`` when it names none) and its joined data lines."""
    name = "message"
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data)


def json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; ``{}`` for anything else (a proxy's HTML error page)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
