"""The registry on SQLite and PostgreSQL: versions, aliases, checkpoints, runs, gc."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas import AliasReason, Lineage, OffsetRange
from services.registry.client import ANY, Registry
from services.registry.errors import AliasConflict, FrozenModel, NotFound, SpecConflict
from tests.services.registry.helpers import CONFIG, predictor


def test_versions_are_numbered_per_model(registry: Registry) -> None:
    lineage = Lineage(
        ranges=(OffsetRange(topic="v", partition=0, start=0, end=100),), example_count=100
    )
    first = registry.register_version(
        model="sea",
        kind="online",
        predictor=predictor(),
        params={"lr": 0.1},
        metrics={"accuracy": 0.8},
        lineage=lineage,
    )
    second = registry.register_version(
        model="sea",
        kind="batch",
        predictor=predictor(30),
        parent_version=1,
        training_duration_s=1.5,
    )
    other = registry.register_version(model="elec", kind="online", predictor=predictor())
    assert (first.version, second.version, other.version) == (1, 2, 1)
    got = registry.get_version(model="sea", version=1)
    assert got is not None and got.lineage == lineage and got.params == {"lr": 0.1}
    assert got.spec_sha256 == CONFIG.spec_sha256() and got.artifact.key_id == "k1"
    assert [v.version for v in registry.list_versions(model="sea")] == [2, 1]
    assert registry.outbox_backlog() == 3  # one ModelVersionPublished each, not relayed


def test_load_predictor_round_trip(registry: Registry) -> None:
    v = registry.register_version(model="sea", kind="online", predictor=predictor())
    loaded = registry.load_predictor(model="sea", version=v.version)
    assert loaded.predict_many([{"x": 0.0}, {"x": 1.0}]) == [False, True]


def test_alias_compare_and_set(registry: Registry) -> None:
    for _ in range(3):
        registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="test",
    )
    move = registry.move_alias(
        model="sea",
        alias="champion",
        to_version=2,
        expect=1,
        reason=AliasReason.PROMOTED,
        actor="trainer",
        evidence={"holdout": 0.9},
    )
    assert (move.from_version, move.to_version, move.evidence) == (1, 2, {"holdout": 0.9})
    with pytest.raises(AliasConflict, match="is at v2, not v1"):
        registry.move_alias(
            model="sea",
            alias="champion",
            to_version=3,
            expect=1,
            reason=AliasReason.PROMOTED,
            actor="trainer",
        )
    # several acceptable versions, as the trainer's rule needs
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=3,
        expect={1, 2},
        reason=AliasReason.PROMOTED,
        actor="trainer",
    )
    assert registry.get_alias(model="sea", alias="champion") == 3
    history = registry.alias_history(model="sea", alias="champion")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (2, 3, "promoted"),
        (1, 2, "promoted"),
        (None, 1, "manual"),
    ]
    with pytest.raises(NotFound):
        registry.move_alias(
            model="sea",
            alias="champion",
            to_version=9,
            expect=ANY,
            reason=AliasReason.MANUAL,
            actor="t",
        )


def test_rollback_goes_to_the_previous_version(registry: Registry) -> None:
    for _ in range(2):
        registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.COLD_START,
        actor="t",
    )
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=2,
        expect=1,
        reason=AliasReason.PROMOTED,
        actor="t",
    )
    move = registry.rollback(model="sea", expect=2, actor="evaluator", evidence={"drop": 0.2})
    assert (move.to_version, move.reason) == (1, "rolled_back")


def test_frozen_model_refuses_automatic_moves(registry: Registry) -> None:
    registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.freeze(model="sea", reason="audit")
    with pytest.raises(FrozenModel, match="audit"):
        registry.move_alias(
            model="sea",
            alias="champion",
            to_version=1,
            expect=None,
            reason=AliasReason.PROMOTED,
            actor="trainer",
        )
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="admin",
    )
    info = registry.get_model(name="sea")
    assert info is not None and info.frozen and info.aliases == {"champion": 1}


def test_checkpoint_round_trip(registry: Registry) -> None:
    assert registry.load_checkpoint(owner="learner", key="sea") is None
    registry.save_checkpoint(owner="learner", key="sea", state={"n": 1}, offsets={"0": 10})
    registry.save_checkpoint(owner="learner", key="sea", state={"n": 2}, offsets={"0": 20})
    cp = registry.load_checkpoint(owner="learner", key="sea")
    assert cp is not None and cp.state == {"n": 2} and cp.offsets == {"0": 20}


def test_runs_are_idempotent_by_trigger(registry: Registry) -> None:
    run, created = registry.start_run(model="sea", trigger_event_id="ev-1", window={"n": 5})
    again, created_again = registry.start_run(model="sea", trigger_event_id="ev-1")
    assert created and not created_again and again.id == run.id
    registry.add_candidate(
        run_id=run.id,
        name="random_forest",
        params={"n_estimators": 50},
        metrics={"accuracy": 0.9},
        fit_s=1.2,
    )
    done = registry.finish_run(
        run_id=run.id, status="rejected", decision="no candidate beat the champion by the margin"
    )
    assert done.status == "rejected" and done.candidates[0].name == "random_forest"
    assert [r.id for r in registry.list_runs(model="sea")] == [run.id]


def test_handled_ids(registry: Registry) -> None:
    assert registry.mark_handled(consumer="c", event_id="e")
    assert not registry.mark_handled(consumer="c", event_id="e")
    assert registry.mark_handled(consumer="other", event_id="e")
    assert registry.was_handled(consumer="c", event_id="e")


def test_specs_recorded_once(registry: Registry) -> None:
    first = registry.record_spec(config=CONFIG)
    assert registry.record_spec(config=CONFIG) == first
    changed = CONFIG.model_copy(update={"policy": CONFIG.policy.model_copy(update={"margin": 0.5})})
    with pytest.raises(SpecConflict):
        registry.record_spec(config=changed)
    assert registry.get_spec(stream="sea") == first
    assert registry.spec_by_sha256(spec_sha256=CONFIG.spec_sha256()) == first


def test_gc_keeps_aliased_and_newest(registry: Registry) -> None:
    made = [
        registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
        for i in range(5)
    ]
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="t",
    )
    for i in range(5):
        registry.save_checkpoint(owner="learner", key="sea", state=i, offsets={})
    registry.mark_handled(consumer="c", event_id="old")
    limits = {"keep_versions": 2, "keep_checkpoints": 1, "handled_ttl": timedelta(seconds=-1)}
    preview = registry.gc(**limits, dry_run=True)  # type: ignore[arg-type]
    assert {v.status for v in registry.list_versions(model="sea")} == {"registered"}
    assert registry.load_predictor(model="sea", version=2) is not None  # nothing deleted
    report = registry.gc(**limits)  # type: ignore[arg-type]
    assert preview == report
    # automatic retention already kept only the newest 3 checkpoints: gc trims to 1
    assert report.artifacts == 2 and report.checkpoints == 2 and report.handled_events == 1
    kept = {v.version: v.status for v in registry.list_versions(model="sea")}
    assert kept == {5: "registered", 4: "registered", 3: "archived", 2: "archived", 1: "registered"}
    assert registry.load_predictor(model="sea", version=1) is not None
    with pytest.raises(NotFound):
        registry.load_predictor(model="sea", version=2)
    assert made[4].version == 5


def test_idempotency_key_returns_the_first_version(registry: Registry) -> None:
    first = registry.register_version(
        model="sea", kind="online", predictor=predictor(), idempotency_key="learner:sea:2000"
    )
    again = registry.register_version(
        model="sea", kind="online", predictor=predictor(7), idempotency_key="learner:sea:2000"
    )
    assert again == first
    assert [v.version for v in registry.list_versions(model="sea")] == [1]
