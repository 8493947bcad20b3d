"""Request and response shapes of serving, and the pure checks behind them.

Two ways to ask for predictions:

* ``POST /v2/models/{model}/infer``, the Open Inference Protocol (KServe V2 REST), so
  existing inference clients work. Inputs are V2 tensors, either **one input per
  feature** (name = feature, shape ``[N]`` or ``[N, 1]``, datatype ``FP64``/``FP32``/
  ``INT*``/``UINT*`` for numbers, ``BOOL`` for booleans, ``BYTES`` for categories; null
  where a nullable feature is missing) or **one ``BYTES`` input named ``instances``**
  whose elements are JSON objects (or their JSON text), one per row. Request
  ``parameters``: ``alias`` (default ``champion``) and ``example_ids`` (one per row, used
  to send shadow pairs the evaluator can join with later labels).
* ``POST /models/{model}/predict`` with ``{"instances": [{feature: value, ...}, ...]}``
  (and optional ``ids`` and ``alias``).

Rows are checked against the features the model uses before it sees them: a missing
feature, a wrong type, a non-finite number or a null where the stream's spec does not
allow one is a :class:`BadRequest` (HTTP 422) naming the row and the feature.

>>> from services.common.predictor import FeatureRef
>>> feats = (FeatureRef("x", "number"), FeatureRef("c", "category"))
>>> req = InferRequest.model_validate({"inputs": [
...     {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2]},
...     {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]}]})
>>> rows_from_tensors(req.inputs)
[{'x': 1.5, 'c': 'a'}, {'x': 2, 'c': 'b'}]
>>> check_rows([{"x": "1"}], feats)
Traceback (most recent call last):
...
services.serving.protocol.BadRequest: row 0: feature 'x' must be a number, got str '1'
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictFloat, StrictInt

from schemas import ReasonCode
from services.common.errors import DriftlineError
from services.common.http_errors import excerpt
from services.common.predictor import FeatureRef

MAX_ROWS = 10_000
MAX_VERSION = 2**31 - 1  # model versions are 32-bit in the registry
Dim = Annotated[int, Field(ge=0, le=2**31 - 1)]
Scalar = StrictBool | StrictInt | StrictFloat | str
Parameters = dict[str, Scalar]
"""V2 ``$parameters``: values are strings, numbers or booleans (no objects, lists, null)."""
NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"} | {
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
DATATYPES = NUMERIC | {"BOOL", "BYTES"}
INSTANCES = "instances"


class BadRequest(DriftlineError):
    """A request that cannot be answered as sent (HTTP 422; on Kafka a dead letter with
    ``reason``)."""

    def __init__(self, detail: str, reason: ReasonCode = ReasonCode.CONTRACT_VIOLATION) -> None:
        super().__init__(detail)
        self.reason = reason


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- Open Inference Protocol (V2) ----------------------------------------------------------


class Tensor(_Body):
    """A V2 tensor: ``data`` flattened in row-major order."""

    name: str = Field(min_length=1, max_length=200)
    shape: list[Dim] = Field(min_length=1, max_length=2)
    datatype: str = Field(max_length=16, description="FP64, FP32, INT64, ..., BOOL or BYTES")
    parameters: dict[str, JsonValue] | None = None
    data: list[Any] = Field(max_length=MAX_ROWS)


class OutputTensor(BaseModel):
    """An output tensor of the answer."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class RequestedOutput(_Body):
    """An output the client asks for (``prediction`` and/or ``probabilities``)."""

    name: str
    parameters: dict[str, JsonValue] | None = None


class InferRequest(_Body):
    """``POST /v2/models/{model}/infer`` (``model_name`` and ``model_version``, which some
    clients repeat in the body, must agree with the path when given)."""

    id: str | None = Field(default=None, max_length=200)
    model_name: str | None = Field(default=None, max_length=200)
    model_version: str | None = Field(default=None, max_length=20)
    parameters: dict[str, JsonValue] | None = None
    inputs: list[Tensor] = Field(min_length=1, max_length=1000)
    outputs: list[RequestedOutput] | None = Field(default=None, max_length=10)


class InferResponse(BaseModel):
    """The V2 answer: which model and version answered, and the output tensors."""

    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters
    outputs: list[OutputTensor]


class TensorMetadata(BaseModel):
    """One input or output of the model metadata."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{model}``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: Parameters = Field(default_factory=dict)


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


# -- the plain JSON endpoint ----------------------------------------------------------------


class PredictRequest(_Body):
    """``POST /models/{model}/predict``: rows as objects of feature values."""

    instances: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)
    ids: list[str] | None = Field(
        default=None,
        max_length=MAX_ROWS,
        description="example ids, one per row (for shadow pairs and the log)",
    )
    alias: str = Field(default="champion", pattern=r"^[A-Za-z0-9_-]+$", max_length=64)


class PredictResponse(BaseModel):
    """Predictions of one model version, in the order of the instances."""

    model: str
    version: int
    alias: str | None
    predictions: list[Any]
    probabilities: list[dict[str, float] | None] | None = None
    out_of_spec: dict[str, int] | None = Field(
        default=None,
        description="values outside the stream's spec (range or categories), per feature",
    )


# -- pure helpers -------------------------------------------------------------------------


def rows_from_tensors(inputs: Sequence[Tensor]) -> list[dict[str, Any]]:
    """V2 input tensors -> one dict of feature values per row (raises BadRequest)."""
    if len(inputs) == 1 and inputs[0].name == INSTANCES:
        return _rows_from_instances(inputs[0])
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise BadRequest(f"inputs repeat a name: {sorted(n for n in names if names.count(n) > 1)}")
    counts = {t.name: _rows_of(t) for t in inputs}
    if len(set(counts.values())) != 1:
        raise BadRequest(f"inputs disagree on the number of rows: {counts}")
    (n,) = set(counts.values())
    if n > MAX_ROWS:
        raise BadRequest(f"at most {MAX_ROWS} rows per request, got {n}")
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for tensor in inputs:
        for i, value in enumerate(tensor.data):
            rows[i][tensor.name] = value
    return rows


def _rows_of(tensor: Tensor) -> int:
    if tensor.datatype not in DATATYPES:
        raise BadRequest(
            f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one of "
            f"{', '.join(sorted(DATATYPES))}"
        )
    if any(d < 0 for d in tensor.shape) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} is not [N] or [N, 1] (one feature)"
        )
    n = tensor.shape[0]
    if len(tensor.data) != n:
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} says {n} values, data has "
            f"{len(tensor.data)}"
        )
    for value in tensor.data:
        if value is None:
            continue
        ok = (
            isinstance(value, bool)
            if tensor.datatype == "BOOL"
            else isinstance(value, str)
            if tensor.datatype == "BYTES"
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok:
            raise BadRequest(
                f"input {tensor.name!r}: {type(value).__name__} {excerpt(value)} is not "
                f"{tensor.datatype}"
            )
    return n


def _rows_from_instances(tensor: Tensor) -> list[dict[str, Any]]:
    if tensor.datatype != "BYTES":
        raise BadRequest(f"input {INSTANCES!r} must be BYTES (JSON objects), not {tensor.datatype}")
    if len(tensor.data) > MAX_ROWS:
        raise BadRequest(f"at most {MAX_ROWS} rows per request, got {len(tensor.data)}")
    if tensor.shape[0] != len(tensor.data):
        raise BadRequest(
            f"input {INSTANCES!r}: shape {tensor.shape} says {tensor.shape[0]} rows, data has "
            f"{len(tensor.data)}"
        )
    rows = []
    for i, item in enumerate(tensor.data):
        value = item
        if isinstance(item, str):
            try:
                value = json.loads(item)
            except ValueError as exc:
                raise BadRequest(f"instances[{i}] is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise BadRequest(f"instances[{i}] must be a JSON object, got {type(value).__name__}")
        rows.append(value)
    return rows


_TYPE_WORDS = {"number": "a number", "bool": "a boolean", "category": "a string (category)"}


def check_rows(
    rows: Sequence[Mapping[str, Any]],
    features: Sequence[FeatureRef],
    nullable: Collection[str] = (),
) -> None:
    """Raise :class:`BadRequest` unless every row has every feature the model uses, with
    the right type (extra keys are ignored).

    >>> check_rows([{"x": 1}], (FeatureRef("x", "number"),))
    >>> check_rows([{}], (FeatureRef("x", "number"),))
    Traceback (most recent call last):
    ...
    services.serving.protocol.BadRequest: row 0: feature 'x' is missing
    """
    if not rows:
        raise BadRequest("no rows to predict")
    for i, row in enumerate(rows):
        for ref in features:
            if ref.name not in row or row[ref.name] is None:
                if ref.name in nullable:
                    continue
                word = "is missing" if ref.name not in row else "is null (not nullable)"
                raise BadRequest(
                    f"row {i}: feature {ref.name!r} {word}", ReasonCode.MISSING_FEATURE
                )
            value = row[ref.name]
            if ref.type == "number":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if ok and not math.isfinite(value):
                    raise BadRequest(
                        f"row {i}: feature {ref.name!r} is not finite ({value})",
                        ReasonCode.NON_FINITE,
                    )
            elif ref.type == "bool":
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise BadRequest(
                    f"row {i}: feature {ref.name!r} must be {_TYPE_WORDS.get(ref.type, ref.type)}, "
                    f"got {type(value).__name__} {excerpt(value)}",
                    ReasonCode.WRONG_TYPE,
                )


def check_ids(ids: Sequence[Any] | None, n: int) -> list[str] | None:
    """Example ids as strings, one per row (None when not given)."""
    if ids is None:
        return None
    if not isinstance(ids, list | tuple) or len(ids) != n:
        raise BadRequest(f"example ids must be a list of {n} ids, one per row")
    if not all(isinstance(i, str | int) and not isinstance(i, bool) and str(i) for i in ids):
        raise BadRequest("example ids must be non-empty strings or integers")
    return [str(i) for i in ids]


def output_tensor(name: str, values: Sequence[Any]) -> OutputTensor:
    """Predicted labels as a V2 tensor with the narrowest datatype that fits.

    >>> output_tensor("prediction", [True, False]).datatype
    'BOOL'
    >>> output_tensor("prediction", [1, 2.5]).datatype
    'FP64'
    >>> output_tensor("prediction", ["a", 1]).data
    ['a', '1']
    """
    if all(isinstance(v, bool) for v in values):
        datatype, data = "BOOL", list(values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        datatype, data = "INT64", list(values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        datatype, data = "FP64", [float(v) for v in values]
    else:
        datatype, data = "BYTES", [str(v) for v in values]
    return OutputTensor(name=name, shape=[len(data)], datatype=datatype, data=data)


def probability_tensor(
    probabilities: Sequence[Mapping[str, float] | None],
) -> OutputTensor | None:
    """Class probabilities as an ``[N, K]`` FP64 tensor; the classes, in column order, as
    JSON text in ``parameters.classes`` (V2 parameters hold no lists).

    >>> t = probability_tensor([{"a": 0.25, "b": 0.75}, {"b": 1.0}])
    >>> t.shape, t.data, t.parameters
    ([2, 2], [0.25, 0.75, 0.0, 1.0], {'classes': '["a", "b"]'})
    """
    if not probabilities or any(p is None for p in probabilities):
        return None
    classes = sorted({c for p in probabilities if p is not None for c in p})
    data = [float((p or {}).get(c, 0.0)) for p in probabilities for c in classes]
    return OutputTensor(
        name="probabilities",
        shape=[len(probabilities), len(classes)],
        datatype="FP64",
        data=data,
        parameters={"classes": json.dumps(classes)},
    )


def scalar_parameters(values: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """``values`` as V2 parameters: nested objects flattened with dotted keys, lists as
    JSON text, nulls and non-finite numbers left out.

    >>> scalar_parameters({"v": 3, "a": None, "m": {"acc": 0.9, "n": float("nan")}, "l": [1]})
    {'v': 3, 'm.acc': 0.9, 'l': '[1]'}
    """
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if isinstance(value, Mapping):
            out |= scalar_parameters(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def feature_datatype(ref: FeatureRef) -> str:
    """The V2 datatype of a feature's input tensor."""
    return {"number": "FP64", "bool": "BOOL"}.get(ref.type, "BYTES")
