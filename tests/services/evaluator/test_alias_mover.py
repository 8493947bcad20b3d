"""Decisions carried out on a real (SQLite) registry: compare-and-set, idempotent under
replay, never on a frozen model, and a rollback only of the promotion it watched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import AliasReason
from services.common.settings import DriftlineSettings
from services.evaluator.alias_mover import AliasMover
from services.evaluator.decision import Verdict
from services.evaluator.state import Decision
from services.registry.client import Registry
from tests.keys import private_key_for
from tests.services.evaluator.data import config, tree

CFG = config("loans")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    settings = DriftlineSettings.load(
        env={},
        data_dir=tmp_path,
        signing_key=private_key_for("evaluator-unit-test-key"),
        signing_key_id="k1",
    )
    reg = Registry.open(settings, relay=False)
    for concept in (0, 2, 4):
        reg.register_version(model="loans", kind="batch", predictor=tree(CFG, concept, n=300))
    move(reg, "champion", 1)
    move(reg, "challenger", 2)
    yield reg
    reg.close()


def move(reg: Registry, alias: str, version: int | None) -> None:
    reg.move_alias(
        model="loans",
        alias=alias,
        to_version=version,
        expect=reg.get_alias(model="loans", alias=alias),
        reason=AliasReason.MANUAL,
        actor="test",
    )


def decision(kind: str, champion: int, target: int) -> Decision:
    rule = "promotion" if kind == "promote" else "rollback"
    verdict = Verdict(True, rule, n=500, mean_diff=0.2, statistic=4.0, threshold=2.0)
    return Decision(kind, "loans", champion, target, verdict)  # type: ignore[arg-type]


def test_promotion_moves_champion_with_evidence_and_removes_the_challenger(
    registry: Registry,
) -> None:
    mover = AliasMover(registry)
    d = decision("promote", 1, 2)
    assert mover.carry_out(d) == "applied"
    assert registry.get_alias(model="loans", alias="champion") == 2
    assert registry.get_alias(model="loans", alias="challenger") is None
    last = registry.alias_history(model="loans", alias="champion", limit=1)[0]
    assert last.reason == "promoted" and last.actor == "evaluator"
    assert last.evidence["decision_id"] == d.decision_id and last.evidence["n"] == 500
    # a replay after a restart finds it done and moves nothing
    assert mover.carry_out(d) == "already"
    assert len(registry.alias_history(model="loans", alias="champion")) == 2


def test_a_promotion_overtaken_by_another_move_conflicts(registry: Registry) -> None:
    move(registry, "champion", 3)
    assert AliasMover(registry).carry_out(decision("promote", 1, 2)) == "conflict"
    assert registry.get_alias(model="loans", alias="champion") == 3
    assert registry.get_alias(model="loans", alias="challenger") == 2


def test_a_frozen_model_is_never_moved(registry: Registry) -> None:
    registry.freeze(model="loans", reason="audit")
    mover = AliasMover(registry)
    assert mover.carry_out(decision("promote", 1, 2)) == "frozen"
    assert registry.get_alias(model="loans", alias="champion") == 1


def test_rollback_restores_the_predecessor_once(registry: Registry) -> None:
    mover = AliasMover(registry)
    assert mover.carry_out(decision("promote", 1, 2)) == "applied"
    rollback = decision("rollback", 2, 1)
    assert mover.carry_out(rollback) == "applied"
    last = registry.alias_history(model="loans", alias="champion", limit=1)[0]
    assert (last.from_version, last.to_version, last.reason) == (2, 1, "rolled_back")
    assert last.evidence["rolled_back_from"] == 2
    assert last.evidence["decision_id"] == rollback.decision_id
    assert mover.carry_out(rollback) == "already"


def test_a_rollback_of_a_promotion_that_is_not_the_last_move_is_stale(registry: Registry) -> None:
    mover = AliasMover(registry)
    assert mover.carry_out(decision("promote", 1, 2)) == "applied"
    move(registry, "champion", 3)
    move(registry, "champion", 2)  # champion is 2 again, but by a manual move from 3
    assert mover.carry_out(decision("rollback", 2, 1)) == "stale"
    assert registry.get_alias(model="loans", alias="champion") == 2


def test_an_unknown_model_is_missing(registry: Registry) -> None:
    d = Decision("promote", "nope", 1, 2, decision("promote", 1, 2).verdict)
    assert AliasMover(registry).carry_out(d) == "missing"
