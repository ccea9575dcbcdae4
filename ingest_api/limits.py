"""Request bodies are held to a size as they arrive, before anything parses or spools them."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an uploaded image


class BodyLimit:
    """ASGI middleware: a body over its path's limit is answered 413, by its Content-Length up front or,
    without one (chunked), as soon as the bytes received pass the limit."""

    def __init__(self, app, default_bytes: int, per_path: dict[str, int]):
        self.app, self.default_bytes, self.per_path = app, default_bytes, per_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope["path"], self.default_bytes)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # raised inside the app's read: its error handler answers 413
                    raise HTTPException(413, f"the request body is limited to {limit} bytes")
            return message
        await self.app(scope, counted, send)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": "payload_too_large", "message": f"the request body is limited to {limit} bytes"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body.encode()})
