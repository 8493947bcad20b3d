"""Artifact fingerprinting: the same fitted model gives the same bytes and sha256 in any
process, so ``driftline models reproduce`` can compare a rebuilt model with the recorded
one (:mod:`services.trainer.reproduce`) and the trainer registers what it fingerprints.

Two things make pickles of equal models differ: pydantic's record of explicitly set
fields (a set of strings, pickled in hash-seed order; :func:`canonical` empties it) and
pickle's sharing of equal strings by object identity (:func:`memo_free_pickle` writes
every string out).

>>> memo_free_pickle(["a" * 3, "a" * 3]) == memo_free_pickle(["aaa", "aaa"])
True
"""

from __future__ import annotations

import hashlib
import io
import pickle
from typing import Any

from schemas.streams import Spec
from services.common.predictor import Predictor


def canonical(spec: Spec) -> Spec:
    """The spec with every field written out and no record of which ones were set.

    pydantic keeps the names of explicitly set fields in a set, and a set of strings
    pickles in an order that changes with each process's hash seed; emptied, the
    artifact's bytes depend only on the model, so a rebuilt model has the same sha256.
    """
    out = Spec.model_validate(spec.model_dump(mode="json"))
    for part in (out, out.label, *out.features):
        object.__setattr__(part, "__pydantic_fields_set__", set())
    return out


def memo_free_pickle(obj: Any) -> bytes:
    """``obj`` pickled without pickle's memo: every string written out, so sharing depends
    only on the content, not on the path that made each object (acyclic objects only, as
    fitted scikit-learn models are)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: every string written out; sklearn models are acyclic
    pickler.dump(obj)
    return buffer.getvalue()


def normalized(predictor: Predictor) -> Predictor:
    """The predictor rebuilt from a memo-free pickle of itself.

    Pickle shares equal strings by object identity, and identity depends on the path
    that made an object (a search before the fit, a JSON round trip of the params), so
    two identical models could pack to different bytes. Rebuilt this way, sharing
    depends only on the content, and a reproduced model has the same artifact sha256.
    """
    rebuilt = pickle.loads(memo_free_pickle(predictor))  # noqa: S301 - bytes made just above
    assert isinstance(rebuilt, Predictor)  # noqa: S101
    return rebuilt


def content_sha256(predictor: Predictor) -> str:
    """sha256 of the predictor's memo-free pickle: the same for the same fitted model in any
    process (the artifact's own bytes may differ in how pickle shared equal strings)."""
    return hashlib.sha256(memo_free_pickle(predictor)).hexdigest()
