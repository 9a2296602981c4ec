"""Server-sent-event framing helpers (imports nothing from thinkserve)."""

from __future__ import annotations

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"
