"""Request bodies of driftline's HTTP servers: a size limit, and strict JSON.

* :class:`BodyLimit` (ASGI middleware) answers 413 to a body over the limit, by its
  ``Content-Length`` before reading anything, or as soon as a chunked body passes it.
* :func:`json_route` makes a FastAPI route class whose JSON bodies are parsed strictly:
  ``NaN``, ``Infinity`` and numbers that overflow to infinity are refused (422), as are
  bytes that are not UTF-8 JSON (422, never FastAPI's undocumented 400) and strings
  that are not Unicode text (a lone surrogate escape such as ``\\ud800``). With
  ``any_content_type``, a body is JSON whatever its ``Content-Type`` says (or when it
  has none), as inference clients send it; ``decode`` replaces the parser (serving uses
  it for the binary tensor extension).

>>> strict_json(b'{"a": [1, 2.5]}')
{'a': [1, 2.5]}
>>> strict_json(b'{"a": NaN}')
Traceback (most recent call last):
...
json.decoder.JSONDecodeError: not standard JSON: NaN: line 1 column 1 (char 0)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from services.common.http_errors import problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Decoder = Callable[[bytes, Headers], Any]


def _constant(name: str) -> Any:
    raise ValueError(f"not standard JSON: {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number is not finite: {text[:40]}")
    return value


_SUSPECT = re.compile(rb"\\ud[89a-f][0-9a-f]{2}", re.IGNORECASE)


def _bad_text(value: Any) -> str | None:
    """What is wrong with the first string (key or value) in ``value`` that is not Unicode
    text (None: every one is)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a lone surrogate (not Unicode text)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def strict_json(body: bytes, headers: Headers | None = None) -> Any:
    """Parse ``body`` as standard JSON with finite numbers and clean text (raises
    JSONDecodeError)."""
    try:
        value = json.loads(body, parse_constant=_constant, parse_float=_finite)
        if _SUSPECT.search(body) and (bad := _bad_text(value)) is not None:
            raise ValueError(f"a string holds {bad}")
        return value
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, limits, our refusals
        message = str(exc) if not isinstance(exc, UnicodeDecodeError) else "not UTF-8 text"
        raise json.JSONDecodeError(message[:200], "", 0) from None


class _JSONRequest(Request):
    decode: Decoder = staticmethod(strict_json)

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = type(self).decode(await self.body(), self.headers)
        return self._json


def json_route(*, any_content_type: bool = False, decode: Decoder = strict_json) -> type[APIRoute]:
    """A route class parsing JSON bodies with ``decode`` (see the module docstring)."""

    request_class = type("JSONRequest", (_JSONRequest,), {"decode": staticmethod(decode)})

    class JSONRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            rewrite = any_content_type and self.body_field is not None

            async def route(request: Request) -> Response:
                scope = request.scope
                if rewrite:
                    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                    headers.append((b"content-type", b"application/json"))
                    scope = {**scope, "headers": headers}
                return await handler(request_class(scope, request.receive))

            return route

    return JSONRoute


class BodyLimit:
    """ASGI middleware: 413 for request bodies over ``max_bytes``; paths starting with one
    of ``exempt`` are left to their route, which enforces a limit of its own (uploads)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, tracking)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, _too_large(self.max_bytes))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(HTTPException):
    """A chunked body passed the limit while it was read (an HTTPException, so that
    FastAPI's body parsing lets it through to the 413 handler)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large(max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"the request body is larger than this server accepts ({max_bytes} bytes)"
