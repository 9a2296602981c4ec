"""Reading request bodies shared by both dialects: JSON to wire model, content parts to text
(imports core).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from thinkserve.core.errors import InvalidParameter

WireModel = TypeVar("WireModel", bound=BaseModel)


def parse_body(body: bytes, model: type[WireModel]) -> WireModel:
    """JSON bytes -> a validated wire model; any problem becomes ``InvalidParameter``.

    Pydantic's first complaint is kept, with where it was: ``"Input should be a valid number:
    temperature"``.
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidParameter("The request body must be a JSON object.")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "list[")))
        message = f"{first['msg']}: {where}" if where else first["msg"]
        raise InvalidParameter(message, param=where or None) from exc


def message_text(
    content: str | Sequence[tuple[str, str | None]] | None, *, assistant: bool, index: int
) -> str:
    """A turn's text; ``content`` parts come as ``(kind, text)`` pairs, each dialect naming kinds
    its own way. Only text is served: any other part is refused by name."""
    if content is None:
        if assistant:
            return ""
        raise InvalidParameter(f"messages[{index}].content must not be empty", param="messages")
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for kind, text in content:
        if kind != "text" or text is None:
            raise InvalidParameter(
                f"messages[{index}] has a '{kind}' part: this model supports text input only.",
                param="messages",
            )
        texts.append(text)
    return "".join(texts)
