"""The evaluator's decisions carried out on the registry: compare-and-set alias moves
(promotion, rollback) with their evidence, idempotent across restarts."""

from __future__ import annotations

from schemas import AliasReason
from services.evaluator.state import Decision
from services.registry.client import AliasConflict, FrozenModel, NotFound, Registry

ACTOR = "evaluator"


class AliasMover:
    """Carries out decisions on the registry: compare-and-set moves with evidence.

    Idempotent: a decision replayed after a restart finds its move done (``already``);
    a decision overtaken by another move fails its compare-and-set (``conflict``);
    a frozen model is never moved.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def carry_out(self, d: Decision) -> str:
        """Carry out one decision; returns ``applied``, ``already`` (done before: a replay
        after a restart), ``conflict`` (the alias moved meanwhile), ``frozen``, ``stale``
        (the champion's last move is not the promotion being rolled back) or ``missing``."""
        info = self.registry.get_model(name=d.stream)
        if info is None:
            return "missing"
        if info.frozen:
            return "frozen"
        champion = info.aliases.get("champion")
        if d.kind == "promote":
            if champion != d.target:
                try:
                    self.registry.move_alias(
                        model=d.stream,
                        alias="champion",
                        to_version=d.target,
                        expect=d.champion,
                        reason=AliasReason.PROMOTED,
                        actor=ACTOR,
                        evidence=d.evidence(),
                    )
                except AliasConflict:
                    return "conflict"
                except FrozenModel:
                    return "frozen"
                outcome = "applied"
            else:
                outcome = "already"
            self._clear_challenger(d)
            return outcome
        if champion == d.target:
            return "already"
        history = self.registry.alias_history(model=d.stream, alias="champion", limit=1)
        if not history or (history[0].to_version, history[0].from_version) != (
            d.champion,
            d.target,
        ):
            return "stale"
        try:
            self.registry.rollback(
                model=d.stream,
                alias="champion",
                expect=d.champion,
                actor=ACTOR,
                evidence=d.evidence(),
            )
        except AliasConflict:
            return "conflict"
        except FrozenModel:
            return "frozen"
        except NotFound:
            return "stale"
        return "applied"

    def _clear_challenger(self, d: Decision) -> None:
        """The promoted challenger is champion now: the ``challenger`` alias is removed."""
        try:
            self.registry.move_alias(
                model=d.stream,
                alias="challenger",
                to_version=None,
                expect=d.target,
                reason=AliasReason.PROMOTED,
                actor=ACTOR,
                evidence={"decision_id": d.decision_id, "promoted_to": "champion"},
            )
        except (AliasConflict, FrozenModel):
            pass  # moved by someone else meanwhile, or already removed
