"""A request body read whole before the app sees it (a chunked body has no Content-Length to judge its
size by), then replayed to the app as if unread. The API's body limit and the local gateway's (API
Gateway's own payload limit) both measure bodies this way."""

from __future__ import annotations

from starlette.types import Message, Receive


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """(the body read, whether it went over `limit` bytes); reading stops once it has."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        total += len(chunks[-1])
        if total > limit:
            return b"".join(chunks), True
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body` first, then whatever `receive` says next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
