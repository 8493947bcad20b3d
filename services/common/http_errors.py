"""Error bodies of driftline's HTTP servers: short, always encodable, never an echo.

Every refusal is a JSON object ``{"error": "...", "detail": "..."}`` (the same words under
the Open Inference Protocol's key and FastAPI's): :class:`Problem` documents it.
Whatever a client sent is quoted back only as a short excerpt (:func:`excerpt`), so a
20 MB body never comes back as a 20 MB error, and text that cannot be encoded (a lone
surrogate, NaN, an integer with a thousand digits) never turns a 4xx into a 500.

>>> excerpt("x" * 500)[-16:]
'x... (500 chars)'
>>> excerpt(float("nan")), excerpt(10**400)
('nan', '<integer of 1329 bits>')
>>> excerpt("\\udcff")
"'\\\\udcff'"
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

EXCERPT_CHARS = 80  # of any client input quoted in an error
MAX_MESSAGES = 3  # validation errors spelled out in "error"; the rest are counted


class Problem(BaseModel):
    """A refusal or a failure, in words (``error`` and ``detail`` say the same)."""

    error: str
    detail: str


class ValidationProblem(Problem):
    """A malformed request: what is wrong where (inputs quoted as short excerpts)."""

    errors: list[dict[str, str]] = []


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, encodable rendering of ``value`` (``repr`` for text, cut at ``limit``)."""
    if isinstance(value, bool) or value is None:
        text = repr(value)
    elif isinstance(value, int):
        text = (
            repr(value) if value.bit_length() <= 64 else f"<integer of {value.bit_length()} bits>"
        )
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else str(value)
    elif isinstance(value, str | bytes):
        text = repr(value[: limit + 1])
    elif isinstance(value, dict):
        text = f"<object of {len(value)} keys>"
    elif isinstance(value, list | tuple):
        text = f"<array of {len(value)} items>"
    else:
        text = f"<{type(value).__name__}>"
    text = clean(text)
    size = len(value) if isinstance(value, str | bytes) else len(text)
    if len(text) > limit:
        return f"{text[:limit]}... ({size} chars)"
    return text


def clean(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response of a refusal."""
    text = clean(message)
    if len(text) > 1000:  # messages quote excerpts; this bounds any that did not
        text = text[:1000] + "..."
    return JSONResponse({"error": text, "detail": text}, status_code=status, headers=headers)


def describe_errors(errors: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """Pydantic/FastAPI validation errors -> one line of words and a list of short items."""
    items = []
    for err in errors[:20]:
        loc = ".".join(
            excerpt(p, 40) if not isinstance(p, str) else clean(p)[:40] for p in err.get("loc", ())
        )
        item = {
            "loc": loc,
            "msg": clean(str(err.get("msg", "")))[:200],
            "type": str(err.get("type", "")),
        }
        if "input" in err and err.get("type") != "missing":
            item["input"] = excerpt(err["input"])
        ctx = err.get("ctx") or {}
        if "error" in ctx:
            item["msg"] = f"{item['msg']}: {clean(str(ctx['error']))[:200]}"
        items.append(item)
    words = "; ".join(f"{i['loc']}: {i['msg']}" for i in items[:MAX_MESSAGES])
    if len(errors) > MAX_MESSAGES:
        words += f" (+{len(errors) - MAX_MESSAGES} more)"
    return words or "malformed request", items


def install_error_handlers(app: FastAPI, *, on_invalid: Any = None) -> None:
    """Make every error of ``app`` a :class:`Problem` (422s a :class:`ValidationProblem`).

    ``on_invalid(request)`` is called for each 422 (to count it).
    """

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it
        if exc.status_code < 400 or exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it
        if on_invalid is not None:
            on_invalid(request)
        words, items = describe_errors(exc.errors())
        return JSONResponse({"error": words, "detail": words, "errors": items}, status_code=422)

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, failed)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "the request body is larger than the server accepts"},
    422: {"model": ValidationProblem, "description": "malformed request"},
}
"""Responses every route may give: merge into each app's ``responses``."""
