"""Server-sent events: the wire format and a response that tells its owner when the stream ends.

    event: candidate
    data: {"origin": "greedy", "sql": "SELECT …", "ok": true, …}

One event per pipeline stage (see sqlwright.pipeline.events), then `event: answer` with the same JSON as
POST /api/v1/ask, or `event: error` with {"detail", "status"}. Lines starting with ':' are comments (keep-alive
pings while the question waits for the model): EventSource clients ignore them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sqlwright.store.jsonsafe import json_safe

MEDIA_TYPE = "text/event-stream"
PING = b": ping\n\n"


def event(kind: str, data: object) -> bytes:
    """One event: its kind and its data as one line of JSON (JSON escapes line breaks inside strings)."""
    payload = json.dumps(json_safe(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class EventStream(StreamingResponse):
    """A text/event-stream response that calls `on_close` however it ends: the last event sent, the client
    gone (a failed send, or Starlette's disconnect listener), or an error."""

    def __init__(self, events: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        super().__init__(events, media_type=MEDIA_TYPE,
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
