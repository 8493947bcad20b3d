"""Loading one model version for the SDK's subscriber: fetch its artifact, verify it,
check it against the declared features and warm it up, and what a load gives back.

:func:`load` is the whole of one attempt; :class:`LoadedModel` is what the subscriber
serves and :class:`LoadFailure` what it records when a version is refused (the reason
codes are listed in :mod:`services.common.subscriber`). Where the bytes come from: the
artifact's ``file://`` URI when readable here, else its ``url``, else
``{DRIFTLINE_REGISTRY_HTTP_URL}/artifacts/{sha256}``. Nothing is unpickled before its
sha256 and its signature (naming this model and version) are verified
(:func:`services.common.artifacts.load_version`).
"""

from __future__ import annotations

import copy
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from schemas import FeatureSpec, ModelVersionPublished, utcnow
from services.common import artifacts
from services.common.predictor import Predictor
from services.common.signing import Keyring, SignatureError

FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LoadedModel:
    """A verified, warmed-up model version, as the subscriber serves it.

    Attributes
    ----------
    model, version
        Which version this is.
    alias
        The alias it was loaded for (None when pinned).
    predictor
        The predictor wrapper (``predict_one``, ``predict_many``, probabilities).
    meta
        The version's event: kind, flavor, algorithm, metrics, lineage, spec sha256.
    loaded_at, load_ms
        When it was swapped in (aware UTC) and how long fetch + verify + warm-up took.
    """

    model: str
    version: int
    alias: str | None
    predictor: Predictor
    meta: ModelVersionPublished
    loaded_at: datetime
    load_ms: float


@dataclass(frozen=True)
class LoadFailure:
    """A version that was refused or could not be loaded; the current model stays."""

    model: str
    version: int
    alias: str | None
    reason: str
    detail: str
    at: datetime = field(default_factory=utcnow)


class ReleasedPredictor(Predictor):
    """Stands in for the predictor of a history entry, so the load history (up to 1,000
    entries) keeps no model alive; predictions come from :meth:`ModelSubscriber.get`."""

    def predict_many(self, xs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Refuse: this is a record of a past load."""
        raise RuntimeError("a history entry holds no model: use ModelSubscriber.get() to predict")

    def predict_proba_many(self, xs: Sequence[Mapping[str, Any]]) -> list[dict[str, float] | None]:
        """Refuse: this is a record of a past load."""
        raise RuntimeError("a history entry holds no model: use ModelSubscriber.get() to predict")


def released(loaded: LoadedModel) -> LoadedModel:
    stub = copy.copy(loaded.predictor)
    stub.__class__ = ReleasedPredictor
    stub.model = None
    stub.vectorizer = None
    return replace(loaded, predictor=stub)


class LoadError(Exception):
    """Why one load attempt failed (internal; turned into a :class:`LoadFailure`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def compatibility_problems(predictor: Predictor, features: Sequence[FeatureSpec]) -> list[str]:
    """Why ``predictor`` cannot serve examples with the declared ``features`` (empty: it can).

    Compatible means: every feature the model uses is declared, with the same type.

    >>> from schemas.streams import Spec
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
    ...                             "label": {"kind": "number"}})
    >>> p = Predictor(flavor="river", model=None, spec=spec, spec_sha256="0" * 64,
    ...               algorithm="none")
    >>> compatibility_problems(p, spec.features)
    []
    >>> compatibility_problems(p, [FeatureSpec(name="x", type="bool")])
    ["feature 'x' is bool here, the model uses number"]
    """
    declared = {f.name: f.type for f in features}
    problems = []
    for ref in predictor.features:
        have = declared.get(ref.name)
        if have is None:
            problems.append(f"feature {ref.name!r} is not declared here")
        elif have != ref.type:
            problems.append(f"feature {ref.name!r} is {have} here, the model uses {ref.type}")
    return problems


def warmup_row(predictor: Predictor, features: Sequence[FeatureSpec] = ()) -> dict[str, Any]:
    """A synthetic example with every feature the model uses (0, False, a category).

    >>> from schemas.streams import Spec
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"},
    ...     {"name": "c", "type": "category", "categories": ["a", "b"]}],
    ...     "label": {"kind": "number"}})
    >>> p = Predictor(flavor="river", model=None, spec=spec, spec_sha256="0" * 64,
    ...               algorithm="none")
    >>> warmup_row(p, spec.features)
    {'x': 0.0, 'c': 'a'}
    """
    categories = {f.name: f.categories for f in features if f.categories}
    if predictor.vectorizer is not None:
        categories.update(
            {f.name: f.categories for f in predictor.vectorizer.features if f.categories}
        )
    row: dict[str, Any] = {}
    for ref in predictor.features:
        if ref.type == "number":
            row[ref.name] = 0.0
        elif ref.type == "bool":
            row[ref.name] = False
        else:
            known = categories.get(ref.name)
            row[ref.name] = known[0] if known else ""
    return row


def load(
    meta: ModelVersionPublished,
    *,
    keyring: Keyring,
    declared: Sequence[FeatureSpec] | None,
    registry_api_url: str | None,
) -> Predictor:
    """Fetch, verify, unpickle, check and warm up one version (or raise LoadError).

    ``declared``: the features the caller declared for the model (None: no check).
    """
    data = fetch(meta, registry_api_url)
    try:
        header, predictor = artifacts.load_version(data, meta, keyring)
    except SignatureError as exc:
        raise LoadError(exc.reason, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - unpickling can fail in many ways
        raise LoadError("load_failed", f"{type(exc).__name__}: {exc}") from exc
    if header.spec_sha256 != meta.spec_sha256 or header.flavor != meta.flavor:
        raise LoadError(
            "load_failed",
            f"the artifact says flavor {header.flavor} spec {header.spec_sha256[:12]}, "
            f"the version says {meta.flavor} spec {meta.spec_sha256[:12]}",
        )
    if declared is not None:
        problems = compatibility_problems(predictor, declared)
        if problems:
            raise LoadError("incompatible_spec", "; ".join(problems))
    try:
        row = warmup_row(predictor, declared or ())
        predictor.predict_many([row])
        predictor.predict_proba_many([row])
    except Exception as exc:  # noqa: BLE001 - any failure to predict refuses the model
        raise LoadError("warmup_failed", f"{type(exc).__name__}: {exc}") from exc
    return predictor


def fetch(meta: ModelVersionPublished, registry_api_url: str | None) -> bytes:
    """The artifact's bytes, unverified: from its file, its URL or the registry's API."""
    ref = meta.artifact
    parsed = urlparse(ref.uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            return path.read_bytes()
        except OSError as exc:
            local_error = f"{ref.uri} is not readable here ({type(exc).__name__})"
    else:
        local_error = f"{ref.uri} is not a local file"
    if parsed.scheme in ("http", "https"):
        url = ref.uri
    elif ref.url:
        url = ref.url
    elif registry_api_url:
        url = f"{registry_api_url.rstrip('/')}/artifacts/{ref.sha256}"
    else:
        raise LoadError("fetch_failed", f"{local_error} and DRIFTLINE_REGISTRY_HTTP_URL is not set")
    return _download(url)


def _download(url: str) -> bytes:
    if urlparse(url).scheme not in ("http", "https"):
        raise LoadError("fetch_failed", f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - http(s) checked above
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise LoadError("fetch_failed", f"GET {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LoadError("fetch_failed", f"GET {url}: {exc}") from exc


__all__ = [
    "FETCH_TIMEOUT_S",
    "LoadError",
    "LoadFailure",
    "LoadedModel",
    "ReleasedPredictor",
    "compatibility_problems",
    "fetch",
    "load",
    "released",
    "warmup_row",
]
