"""The trainer's alias move: compare-and-set the gate's winner onto ``champion`` or
``challenger``, once per winning candidate of a run, against the champion that was live at
the drift. A run moves its first winner as soon as it is fitted; a candidate fitted later
moves only if it beats that one on the same holdout (the champion moved: compared again).

The compare-and-set accepts that champion or any later online snapshot that replaced it
(:func:`expected`); when the champion moved to something else during the run, the winner
is compared again with it on the same holdout (:func:`promote`). A scheduled run whose window
ends before a newer drift does not move at all (:func:`superseded`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from schemas import AliasReason
from schemas.drift import DriftDetected, RetrainRequested
from services.registry.client import (
    AliasConflict,
    FrozenModel,
    ModelVersion,
    Registry,
    TrainingRun,
)
from services.trainer import gate
from services.trainer.candidates import Candidate

Trigger = DriftDetected | RetrainRequested
MoveOutcome = Literal["promoted", "rejected", "frozen", "conflict"]


def promote(
    registry: Registry,
    stream: str,
    alias: str,
    run: TrainingRun,
    winner: Candidate,
    champ_version: ModelVersion | None,
    champ: gate.Scored | None,
    decision: gate.Decision,
    metric: str,
    margin: float,
    *,
    rescore: Callable[[ModelVersion], gate.Scored] | None = None,
    max_gap: float = math.inf,
    actor: str,
    pause: Callable[[str], None] = lambda step: None,
) -> tuple[MoveOutcome, str]:
    """Compare-and-set ``alias`` to the winner, once per (run, candidate).

    When the champion moved during the run to a version that is not a later online
    snapshot of the one scored, the winner is compared again, on the same holdout, with
    the new champion: it is promoted over it only if it beats it too.
    """
    to = winner.version.version
    for past in registry.alias_history(model=stream, alias=alias, limit=50):
        if past.evidence.get("run_id") == run.id and past.to_version == to:
            # moved before a crash: not again
            return "promoted", f"{winner.name} v{to} -> {alias}: {decision.summary}"
    evidence = {
        "run_id": run.id,
        "trigger_event_id": run.trigger_event_id,
        "metric": metric,
        "candidate": winner.name,
        "value": winner.scored.metrics.get(metric),
        "champion_version": champ_version.version if champ_version else None,
        "champion_value": champ.metrics.get(metric) if champ else None,
        "margin": margin,
        "gap": winner.scored.gap,
    }
    expect_override: int | None = None
    for _ in range(3):
        expect = (
            expect_override
            if expect_override is not None
            else expected(registry, stream, alias, run, champ_version)
        )
        try:
            registry.move_alias(
                model=stream,
                alias=alias,
                to_version=to,
                expect=expect,
                reason=AliasReason.PROMOTED,
                actor=actor,
                evidence=evidence,
            )
        except AliasConflict as exc:
            if alias == "champion" and replaced_by_online(registry, stream, champ_version):
                continue  # a newer online snapshot arrived between the look and the move
            now = registry.get_alias(model=stream, alias=alias)
            moved_to = registry.get_version(model=stream, version=now) if now is not None else None
            if alias != "champion" or rescore is None or moved_to is None:
                return "conflict", (
                    f"{winner.name} v{to} won the gate but {stream}@{alias} moved during "
                    f"the run ({exc}); not promoted"
                )
            again = rescore(moved_to)
            verdict = gate.decide(
                metric=metric,
                champion=again,
                candidates=[winner.scored],
                margin=margin,
                max_gap=max_gap,
            )
            if verdict.winner is None:
                return "rejected", (
                    f"{winner.name} v{to} won the gate, but {stream}@{alias} moved during "
                    f"the run to v{moved_to.version}, which it does not beat on the same "
                    f"holdout ({verdict.summary}); not promoted"
                )
            evidence = {
                **evidence,
                "champion_version": moved_to.version,
                "champion_value": again.metrics.get(metric),
                "compared_again": True,
            }
            decision = verdict
            expect_override = moved_to.version
            continue
        except FrozenModel as exc:
            return "frozen", f"frozen: {winner.name} v{to} not moved ({exc})"
        pause("moved")
        return "promoted", f"{winner.name} v{to} -> {alias}: {decision.summary}"
    return "conflict", f"{winner.name} v{to}: {stream}@{alias} kept moving; not promoted"


def superseded(
    trigger: Trigger, newest: datetime | None, newer_drift: Callable[[str, datetime], bool] | None
) -> str | None:
    """Why a scheduled run must not promote: a drift was detected after its window."""
    if (
        not isinstance(trigger, RetrainRequested)
        or trigger.requested_by != "learner"
        or newer_drift is None
        or newest is None
    ):
        return None
    if newer_drift(trigger.stream, newest):
        return (
            f"a drift of {trigger.stream} was detected after this scheduled window "
            f"(ending {newest.isoformat()}); the drift's own run trains on newer data"
        )
    return None


def expected(
    registry: Registry,
    stream: str,
    alias: str,
    run: TrainingRun,
    champ_version: ModelVersion | None,
) -> Any:
    """What the compare-and-set accepts: the champion live at the drift or any later
    online snapshot that replaced it (a challenger may replace any challenger)."""
    if alias != "champion":
        return registry.get_alias(model=stream, alias=alias)
    if champ_version is None:
        return None
    accepted = {champ_version.version}
    if champ_version.kind == "online":
        accepted |= {
            v.version
            for v in registry.list_versions(model=stream, limit=500)
            if v.kind == "online" and v.version > champ_version.version
        }
    return accepted


def replaced_by_online(registry: Registry, stream: str, champ_version: ModelVersion | None) -> bool:
    """Whether the champion now is an online snapshot newer than the one at the drift."""
    if champ_version is None or champ_version.kind != "online":
        return False
    now = registry.get_alias(model=stream, alias="champion")
    if now is None:
        return False
    found = registry.get_version(model=stream, version=now)
    return found is not None and found.kind == "online" and now > champ_version.version
