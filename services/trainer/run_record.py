"""A run's outcome and its record: the candidates with their verdicts, the alias moves
made, and the run's end (its decision, winner, champion and window) in the registry."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas import StreamConfig
from services.registry.client import ModelVersion, Registry, TrainingRun
from services.trainer import gate
from services.trainer.candidates import Candidate, Timings
from services.trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)

Outcome = Literal[
    "promoted",
    "rejected",
    "frozen",
    "conflict",
    "too_small",
    "duplicate",
    "coalesced",
    "reported",
    "superseded",
]


@dataclass(frozen=True)
class Result:
    """What :meth:`~services.trainer.runner.Trainer.handle` did."""

    outcome: Outcome
    run_id: str | None = None
    winner_version: int | None = None
    decision: str = ""
    timings: Timings = field(default_factory=Timings)


def conclude(
    registry: Registry,
    metrics: TrainerMetrics,
    config: StreamConfig,
    run: TrainingRun,
    candidates: list[Candidate],
    champ_version: ModelVersion | None,
    champ: gate.Scored | None,
    decision: gate.Decision,
    window_doc: dict[str, Any],
    timings: Timings,
    moves: Sequence[tuple[Candidate, Outcome, str]],
) -> Result:
    """Record the run: its candidates with their verdicts, its alias moves, its end."""
    stream = config.stream
    champion_doc: dict[str, Any] = {
        "version": champ_version.version if champ_version else None,
        "kind": champ_version.kind if champ_version else None,
        "scored_as": champ.name if champ else None,
        "metrics": dict(champ.metrics) if champ else {},
        "segments": dict(champ.segments) if champ else {},
        "gap": champ.gap if champ else None,
    }
    promoted = [c for c, moved, _ in moves if moved == "promoted"]
    winner = promoted[-1] if promoted else (moves[-1][0] if moves else None)
    outcome: Outcome = "promoted" if promoted else (moves[-1][1] if moves else "rejected")
    if promoted:  # the first move as soon as it was fitted, then any better one
        summary = "; then ".join(text for _, moved, text in moves if moved == "promoted")
    else:
        summary = moves[-1][2] if moves else decision.summary
    recorded = {c.name for c in (registry.get_run(run_id=run.id) or run).candidates}
    for cand in candidates:
        verdict = decision.verdict(cand.name)
        is_winner = winner is not None and cand.name == winner.name and outcome == "promoted"
        if cand.name not in recorded:
            note = verdict.reason
            own = next((text for c, _, text in moves if c is cand), None)
            if cand in promoted and not is_winner:
                note = f"promoted as soon as it was fitted, then replaced: {note}"
            elif own is not None and not is_winner:
                note = f"gate winner, but {own}"
            elif verdict.promoted and not is_winner:
                note = f"gate winner, but {summary}"
            registry.add_candidate(
                run_id=run.id,
                name=cand.name,
                params=cand.version.params.get("estimator", {}),
                metrics={**cand.scored.metrics, "gap": cand.scored.gap},
                fit_s=cand.fit_s,
                version=cand.version.version,
                note=("promoted: " if is_winner else "not promoted: ") + note,
            )
        metrics.streams.child(
            metrics.candidates, stream, cand.name, "promoted" if is_winner else "lost"
        ).inc()
    registry.finish_run(
        run_id=run.id,
        status="succeeded" if outcome == "promoted" else "rejected",
        decision=summary,
        winner_version=winner.version.version if winner and outcome == "promoted" else None,
        champion=champion_doc,
        window={**window_doc, "timings": timings.phases},
    )
    log.info("run %s of %s: %s", run.id, stream, summary)
    return Result(
        outcome,
        run.id,
        winner.version.version if winner and outcome == "promoted" else None,
        summary,
        timings,
    )


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` without the NaNs and infinities (the run's JSON record holds neither)."""
    return {k: v for k, v in metrics.items() if math.isfinite(v)}
