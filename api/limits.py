"""Refuse oversized and deeply nested bodies before anything parses them.

A body larger than ``CERTD_MAX_BODY_BYTES`` answers 413 as soon as its
``Content-Length`` says so, or as soon as the bytes read pass the limit: it is
never held whole in memory. A JSON body nested deeper than
``CERTD_MAX_JSON_DEPTH`` answers 422 before the JSON parser sees it, so no
client can make the parser recurse.
"""

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What the depth scan looks at: brackets, and the quotes and backslashes
# that tell whether a bracket stands inside a string.
_SIGNIFICANT = re.compile(rb'[\[\]{}"\\]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class BodyTooLargeError(Exception):
    pass


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the brackets of ``body`` (outside strings) nest past ``limit``.

    One pass over the significant bytes, whatever the body: a regular
    expression that skipped whole strings went back over the rest of the body
    from each quote of an unterminated one (80 KB of escaped quotes took 36 s).
    """
    depth = 0
    in_string = False
    escaped = -1  # the position a backslash in a string escapes
    for found in _SIGNIFICANT.finditer(body):
        position = found.start()
        byte = body[position]
        if position == escaped:
            continue
        if in_string:
            if byte == _BACKSLASH:
                escaped = position + 1
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


class BodyLimits:
    """ASGI middleware enforcing the body size and JSON depth limits."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(send, 413, self._too_large())
            return
        try:
            body = await self._read(receive)
        except BodyTooLargeError:
            await self._refuse(send, 413, self._too_large())
            return
        if json_depth_exceeds(body, self.max_depth):
            detail = f"body: JSON may nest at most {self.max_depth} levels deep"
            await self._refuse(send, 422, detail)
            return
        await self.app(scope, _replay(body, receive), send)

    def _declared_length(self, scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"body: may be at most {self.max_bytes:,} bytes"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps(
            {"detail": detail, "errors": [{"field": "body", "message": detail}]}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the app the body already read, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
