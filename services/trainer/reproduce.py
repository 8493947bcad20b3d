"""``driftline models reproduce``: rebuild a batch version from its recorded lineage.

The recorded offset ranges are read again, the window is cut by the same rule (the
newest ``example_count`` rows of the stream that keep its spec, de-duplicated), split
with the recorded holdout fraction, and the recorded candidate is refitted with the
recorded params and seed. The report compares rows, holdout metrics and the model's
content sha256 (the sha256 of its memo-free pickle); the artifact's own sha256 is shown
too, but the same model may pack to other bytes in another process (pickle shares equal
strings by object identity), so it does not decide.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import StreamConfig
from schemas.lineage import OffsetRange
from services.common import artifacts
from services.common.errors import DriftlineError
from services.common.predictor import Predictor, Vectorizer
from services.registry.client import Registry
from services.trainer import train, window
from services.trainer.fingerprint import canonical, content_sha256, normalized
from services.trainer.run_window import labels
from services.trainer.window import Row

ReadRanges = Callable[[str, Sequence[OffsetRange]], list[Row]]


class NotReproducible(DriftlineError):
    """A version that the trainer did not make, or whose inputs are gone."""


@dataclass(frozen=True)
class Check:
    """One compared quantity."""

    name: str
    recorded: Any
    reproduced: Any
    same: bool
    decisive: bool = True


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` found."""

    model: str
    version: int
    candidate: str
    checks: tuple[Check, ...] = field(default=())

    @property
    def same(self) -> bool:
        """Whether every decisive check agrees."""
        return all(c.same for c in self.checks if c.decisive)


def reproduce(
    registry: Registry,
    *,
    model: str,
    version: int,
    read: ReadRanges,
    config: StreamConfig | None = None,
) -> Reproduction:
    """Rebuild version ``version`` of ``model`` and compare it with what was registered.

    Raises :class:`NotReproducible`, or DataExpired (from ``read``) when the recorded
    ranges have left the topic's retention.
    """
    found = registry.get_version(model=model, version=version)
    if found is None:
        raise NotReproducible(f"no version {model} v{version}")
    params = found.params
    name = params.get("candidate")
    if found.kind != "batch" or not isinstance(name, str):
        raise NotReproducible(
            f"{model} v{version} is a {found.kind} version not made by the trainer; "
            "only trainer versions record what reproduce needs"
        )
    if config is None:
        spec_version = registry.spec_by_sha256(spec_sha256=found.spec_sha256)
        if spec_version is None:
            raise NotReproducible(
                f"the registry has no stream config with spec {found.spec_sha256}"
            )
        config = StreamConfig.model_validate(spec_version.config)
    spec = config.spec
    task = spec.label.kind
    # the run left out what breaks the spec (and the contract) before de-duplicating
    usable, _ = window.conforming(read(model, found.lineage.ranges), spec)
    rows = window.select(window.dedupe(usable), count=found.lineage.example_count)
    checks = [
        Check(
            "rows", found.lineage.example_count, len(rows), len(rows) == found.lineage.example_count
        ),
    ]
    recorded_digest = found.evaluation.get("rows_sha256")
    got_digest = window.digest(rows)
    checks.append(Check("rows sha256", recorded_digest, got_digest, recorded_digest == got_digest))
    train_rows, holdout = window.split(rows, holdout_fraction=float(params["holdout_fraction"]))
    vec = Vectorizer(spec.features)
    fitted = train.fit_final(
        name,
        task,
        dict(params.get("estimator", {})),
        vec.matrix([r.features for r in train_rows]),
        labels(train_rows),
        seed=int(params["seed"]),
    )
    metrics = train.model_metrics(
        task, fitted, vec.matrix([r.features for r in holdout]), labels(holdout)
    )
    for key, recorded in sorted(found.metrics.items()):
        got = metrics.get(key, math.nan)
        checks.append(
            Check(key, recorded, got, math.isclose(recorded, got, rel_tol=1e-9, abs_tol=1e-12))
        )
    predictor = normalized(
        Predictor.sklearn(fitted, spec=canonical(spec), spec_sha256=found.spec_sha256)
    )
    content = content_sha256(predictor)
    recorded_content = found.evaluation.get("model_sha256")
    checks.append(Check("model sha256", recorded_content, content, content == recorded_content))
    if content != recorded_content:
        stored = normalized(registry.load_predictor(model=model, version=version))
        where = first_difference(stored, predictor, "predictor") or "not found"
        checks.append(Check("first difference", where, where, False))
    sha = hashlib.sha256(artifacts.pack(predictor)).hexdigest()
    # The artifact's bytes also depend on how pickle shared equal strings in the process
    # that packed it, so they are reported but only the content hash decides.
    checks.append(
        Check(
            "artifact sha256",
            found.artifact.sha256,
            sha,
            sha == found.artifact.sha256,
            decisive=False,
        )
    )
    return Reproduction(model, version, name, tuple(checks))


def first_difference(a: Any, b: Any, path: str, depth: int = 6) -> str:
    """Where two objects first differ when pickled (an attribute path), for the report."""
    if pickle.dumps(a, protocol=5) == pickle.dumps(b, protocol=5):
        return ""
    if depth > 0 and type(a) is type(b) and hasattr(a, "__dict__") and not isinstance(a, type):
        for key in sorted(set(vars(a)) | set(vars(b))):
            found = first_difference(
                getattr(a, key, None), getattr(b, key, None), f"{path}.{key}", depth - 1
            )
            if found:
                return found
    if depth > 0 and isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                found = first_difference(x, y, f"{path}[{i}]", depth - 1)
                if found:
                    return found
    return f"{path}: {str(a)[:80]!r} != {str(b)[:80]!r}"
