"""The Open Inference Protocol's binary tensor data extension, for request bodies.

A request with the ``Inference-Header-Content-Length: N`` header is N bytes of JSON (the
usual request, whose inputs say ``parameters.binary_data_size`` instead of ``data``)
followed by the raw tensors in input order: little-endian values in row-major order,
``BOOL`` one byte each, ``BYTES`` each element a 4-byte little-endian length then its
bytes (UTF-8 text here). :func:`decode_request` turns such a body into the plain JSON
request, so the rest of serving sees one shape. Anything inconsistent is a
``JSONDecodeError`` (HTTP 422 naming the input).

>>> import struct
>>> head = b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32",'
>>> head += b' "parameters": {"binary_data_size": 8}}]}'
>>> body = head + struct.pack("<2f", 1.5, -2.0)
>>> decode_request(body, {HEADER: str(len(head))})["inputs"][0]["data"]
[1.5, -2.0]
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from services.common.http_body import strict_json

HEADER = "inference-header-content-length"
_FORMATS = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}


def _refuse(message: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(message, "", 0)


def decode_request(body: bytes, headers: Mapping[str, str]) -> Any:
    """The JSON request in ``body``, with binary input data decoded into ``data``."""
    length = headers.get(HEADER)
    if length is None:
        return strict_json(body)
    if not length.isdigit() or int(length) > len(body):
        raise _refuse(f"{HEADER} {length[:20]!r} is not a length within the body")
    split = int(length)
    request = strict_json(body[:split])
    rest = memoryview(body)[split:]
    inputs = request.get("inputs") if isinstance(request, dict) else None
    for tensor in inputs if isinstance(inputs, list) else ():
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        name = str(tensor.get("name"))[:200]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(rest):
            raise _refuse(f"input {name!r}: binary_data_size {size!r} is not within the body")
        if "data" in tensor:
            raise _refuse(f"input {name!r} has both data and binary_data_size")
        tensor["data"] = _values(name, str(tensor.get("datatype")), bytes(rest[:size]))
        rest = rest[size:]
    if len(rest):
        raise _refuse(f"{len(rest)} bytes after the last binary input")
    return request


def _values(name: str, datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        return _strings(name, raw)
    code = _FORMATS.get(datatype)
    if code is None:
        raise _refuse(f"input {name!r}: datatype {datatype[:20]!r} cannot be sent as binary")
    width = struct.calcsize(code)
    if len(raw) % width:
        raise _refuse(f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype}")
    values = list(struct.unpack(f"<{len(raw) // width}{code}", raw))
    if datatype.startswith("FP") and not all(math.isfinite(v) for v in values):
        raise _refuse(f"input {name!r}: a {datatype} value is not finite")
    return values


def _strings(name: str, raw: bytes) -> list[Any]:
    values: list[Any] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise _refuse(f"input {name!r}: a BYTES element's length is cut off")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise _refuse(f"input {name!r}: a BYTES element is longer than the data")
        try:
            values.append(raw[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise _refuse(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        at += size
    return values
