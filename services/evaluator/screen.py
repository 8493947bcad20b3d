"""What the evaluator refuses before it scores: a shadow pair that cannot be a model's
answer on its stream. (A labelled example is checked against its spec with
:func:`services.common.conformance.nonconformance`.)

Pure. A pair's answers are scored in place of a prediction, so an answer the stream's
spec rules out (a class it does not have, a number that is not finite, probabilities
outside [0, 1], a model other than the stream's) would skew the metrics and the
promotion test: it is a dead letter instead.

>>> from schemas import ModelAnswer, ShadowPair
>>> from schemas.streams import Spec
>>> import uuid
>>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
...                             "label": {"kind": "class", "classes": [0, 1]}})
>>> def pair(prediction, model="s"):
...     return ShadowPair(stream="s", example_id="1", request_event_id=uuid.uuid4(),
...         champion=ModelAnswer(model="s", version=1, prediction=1),
...         challenger=ModelAnswer(model=model, version=2, prediction=prediction))
>>> pair_nonconformance(pair(0), spec) is None
True
>>> pair_nonconformance(pair(7), spec)
(<ReasonCode.BAD_LABEL: 'bad_label'>, 'challenger: prediction 7 is not one of the classes [0, 1]')
>>> pair_nonconformance(pair(0, model="other"), spec)[0].value
'contract_violation'
"""

from __future__ import annotations

import math
from typing import Any

from schemas import ModelAnswer, ReasonCode, ShadowPair
from schemas.streams import Spec

__all__ = ["pair_nonconformance"]


def pair_nonconformance(pair: ShadowPair, spec: Spec) -> tuple[ReasonCode, str] | None:
    """The first way one of the pair's answers breaks ``spec``, or ``None``."""
    for role, answer in (("champion", pair.champion), ("challenger", pair.challenger)):
        if answer.model != pair.stream:
            return (
                ReasonCode.CONTRACT_VIOLATION,
                f"{role}: an answer of model {answer.model!r} in a pair of stream {pair.stream!r}",
            )
        problem = _answer(answer, spec)
        if problem is not None:
            return problem[0], f"{role}: {problem[1]}"
    return None


def _answer(answer: ModelAnswer, spec: Spec) -> tuple[ReasonCode, str] | None:
    prediction = answer.prediction
    if spec.label.kind == "class":
        classes: list[Any] = list(spec.label.classes or ())
        if prediction not in classes and str(prediction) not in {str(c) for c in classes}:
            shown = ", ".join(repr(c) for c in classes[:8])
            return (
                ReasonCode.BAD_LABEL,
                f"prediction {prediction!r} is not one of the classes [{shown}]",
            )
    elif isinstance(prediction, bool) or not isinstance(prediction, int | float):
        return ReasonCode.BAD_LABEL, f"prediction {prediction!r} is not a number"
    elif not math.isfinite(prediction):
        return ReasonCode.NON_FINITE, f"prediction {prediction!r} is not finite"
    for name, p in (answer.probabilities or {}).items():
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            return ReasonCode.NON_FINITE, f"probability of {name!r} = {p!r} is not in [0, 1]"
    return None
