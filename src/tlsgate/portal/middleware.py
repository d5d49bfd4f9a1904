"""ASGI middleware that guards every route at once: request size and NUL characters.

No text tlsgate stores may contain NUL (PostgreSQL refuses it in text columns,
so it would surface as a 500 on one database and not the other), and no form or
API body is larger than :data:`MAX_BODY`. Both are refused before any route runs:
400 or 413, as JSON under ``/api/`` and as plain text elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MAX_BODY", "RequestGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1024 * 1024
_NUL_FORMS = (b"\x00", b"%00", b"\\u0000")


def _has_nul(data: bytes) -> bool:
    lowered = data.lower()
    return any(form in lowered for form in _NUL_FORMS)


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope.get("query_string", b"")) or _has_nul(scope.get("path", "").encode(errors="replace")):
            await _refuse(scope, send, 400, "request contains a NUL character")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > MAX_BODY:
                await _refuse(scope, send, 413, f"request body larger than {MAX_BODY} bytes")
                return
            chunks.append(body)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _has_nul(body):
            await _refuse(scope, send, 400, "request contains a NUL character")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if str(scope.get("path", "")).startswith("/api/"):
        payload = json.dumps({"error": {"status": status, "message": message}}).encode()
        content_type = b"application/json"
    else:
        payload = message.encode()
        content_type = b"text/plain; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
