"""The evaluator's state on real models: scoring, de-duplication, lineage, shadow pairs,
promotion and rollback decisions, and a restart that continues identically."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Sequence

import pytest

from schemas import LabelledExample, Lineage, ModelAnswer, ShadowPair
from schemas.lineage import OffsetRange
from services.evaluator.state import EvaluatorState, Labelled, Outcome, Role, Served
from tests.services.evaluator.data import config, examples, tree

TOPIC = "t.examples.valid"
CFG = config()
OLD = Served(version=1, predictor=tree(CFG, 0))  # knows concept 0
NEW = Served(version=2, predictor=tree(CFG, 2))  # knows concept 2


def labelled(items: Sequence[LabelledExample], first_offset: int = 0) -> list[Labelled]:
    return [
        Labelled(example=e, topic=TOPIC, partition=0, offset=first_offset + i, timestamp_s=float(i))
        for i, e in enumerate(items)
    ]


def feed(
    state: EvaluatorState,
    items: list[Labelled],
    models: dict[Role, Served | None],
    batch: int = 100,
    **kw: object,
) -> Outcome:
    total = Outcome()
    for i in range(0, len(items), batch):
        out = state.handle(items[i : i + batch], config=kw.get("cfg", CFG), models=models)  # type: ignore[arg-type]
        total.snapshots += out.snapshots
        total.decisions += out.decisions
        total.scored += out.scored
        total.duplicates += out.duplicates
        total.learned_skips += out.learned_skips
        total.from_shadow += out.from_shadow
    return total


def test_a_better_challenger_is_promoted_once_with_evidence() -> None:
    state = EvaluatorState(snapshot_every=250, look_every=50)
    data = labelled(examples("loans", 2, 1500, seed=3))  # concept 2: the challenger's
    out = feed(state, data, {"champion": OLD, "challenger": NEW})
    assert out.scored == 1500 and out.duplicates == 0
    (decision,) = out.decisions
    assert decision.kind == "promote" and (decision.champion, decision.target) == (1, 2)
    evidence = decision.evidence()
    assert evidence["n"] == 200 and evidence["rule"] == "promotion"
    assert (
        evidence["metrics"]["challenger_accuracy"] > evidence["metrics"]["champion_accuracy"] + 0.3
    )
    assert evidence["decision_id"] == decision.decision_id
    roles = {(s.role, s.version) for s in out.snapshots}
    assert roles == {("champion", 1), ("challenger", 2), ("served", 1)}
    champion_snaps = [s for s in out.snapshots if s.role == "champion"]
    assert [s.example_count for s in champion_snaps] == [250, 500, 750, 1000, 1250, 1500]
    assert all(s.values["rolling_accuracy"] < 0.7 for s in champion_snaps)
    assert all(s.source == "evaluator" and s.model == "loans" for s in out.snapshots)


def test_equal_models_are_not_promoted() -> None:
    state = EvaluatorState(snapshot_every=1000)
    twin = Served(version=3, predictor=OLD.predictor)
    out = feed(
        state, labelled(examples("loans", 0, 1500, seed=3)), {"champion": OLD, "challenger": twin}
    )
    assert out.decisions == [] and state.challenges["loans"].looks > 10


def test_redelivered_examples_are_scored_once() -> None:
    state = EvaluatorState(snapshot_every=1000)
    data = labelled(examples("loans", 0, 300, seed=3))
    redelivered = [Labelled(d.example, TOPIC, 0, 300 + i, 0.0) for i, d in enumerate(data[:50])]
    out = feed(state, data + redelivered, {"champion": OLD, "challenger": None})
    assert out.scored == 300 and out.duplicates == 50
    metrics = state.board.get("loans", 1, "champion")
    assert metrics is not None and metrics.example_count == 300
    assert state.positions[(TOPIC, 0)] == 350


def test_examples_a_version_learned_from_are_not_scored_by_it() -> None:
    state = EvaluatorState(snapshot_every=1000)
    learned = Lineage(ranges=(OffsetRange(topic=TOPIC, partition=0, start=0, end=100),))
    online = Served(version=5, predictor=OLD.predictor, lineage=learned)
    out = feed(
        state, labelled(examples("loans", 0, 300, seed=3)), {"champion": online, "challenger": NEW}
    )
    assert out.learned_skips == 100
    champion = state.board.get("loans", 5, "champion")
    challenger = state.board.get("loans", 2, "challenger")
    assert champion is not None and challenger is not None
    assert (champion.example_count, challenger.example_count) == (200, 300)
    assert state.challenges["loans"].stats.n == 200  # only complete pairs count


def test_a_joined_shadow_pair_gives_the_answer_that_was_served() -> None:
    state = EvaluatorState(snapshot_every=1000)
    data = labelled(examples("loans", 0, 100, seed=3))
    for item in data[:40]:
        wrong = 1 - int(item.example.label)  # serving's live answer, deliberately wrong
        state.add_pair(
            ShadowPair(
                stream="loans",
                example_id=item.example.example_id,
                request_event_id=uuid.uuid4(),
                champion=ModelAnswer(model="loans", version=1, prediction=wrong),
                challenger=ModelAnswer(model="loans", version=9, prediction=wrong),  # not loaded
            ),
            now=0.0,
        )
    out = feed(state, data, {"champion": OLD, "challenger": NEW})
    assert out.from_shadow == 40 and state.join.joined == 40
    champion = state.board.get("loans", 1, "champion")
    assert champion is not None
    assert champion.values()["accuracy"] == pytest.approx(0.6)  # the tree is right on the rest
    challenger = state.board.get("loans", 2, "challenger")
    assert challenger is not None and challenger.values()["accuracy"] < 0.8  # own predictions


def test_a_degraded_champion_is_rolled_back_to_its_predecessor() -> None:
    state = EvaluatorState(snapshot_every=250, rollback_min_examples=150)
    state.watch("loans", metric="accuracy", champion=2, predecessor=1, window=300)
    good = labelled(examples("loans", 2, 400, seed=3))
    bad = labelled(examples("loans", 0, 600, seed=4, start=400), first_offset=400)
    models: dict[Role, Served | None] = {"champion": NEW, "challenger": None, "predecessor": OLD}
    assert feed(state, good, models).decisions == []
    out = feed(state, bad, models, batch=50)
    (decision,) = out.decisions
    assert decision.kind == "rollback" and (decision.champion, decision.target) == (2, 1)
    ev = decision.evidence()
    assert (
        ev["metrics"]["predecessor_rolling_accuracy"] - ev["metrics"]["champion_rolling_accuracy"]
        > 0.05
    )
    assert {s.role for s in out.snapshots} == {"champion", "predecessor", "served"}
    assert state.watches["loans"].decided


def test_a_watch_applies_only_to_the_champion_it_names() -> None:
    state = EvaluatorState(snapshot_every=1000)
    state.watch("loans", metric="accuracy", champion=7, predecessor=1, window=300)
    out = feed(
        state, labelled(examples("loans", 0, 300, seed=4)), {"champion": NEW, "predecessor": OLD}
    )
    assert out.decisions == [] and state.board.get("loans", 1, "predecessor") is None
    assert state.unwatch("loans") is not None and state.unwatch("loans") is None


def test_a_frozen_policy_scores_but_never_decides() -> None:
    state = EvaluatorState(snapshot_every=500)
    frozen = config(frozen=True)
    out = feed(
        state,
        labelled(examples("loans", 2, 800, seed=3)),
        {"champion": OLD, "challenger": NEW},
        cfg=frozen,
    )
    assert out.scored == 800 and out.decisions == []
    assert [s.role for s in out.snapshots if s.role != "served"] == ["champion", "challenger"]


def test_a_challenger_equal_to_the_champion_is_ignored() -> None:
    state = EvaluatorState(snapshot_every=100)
    out = feed(
        state, labelled(examples("loans", 2, 300, seed=3)), {"champion": NEW, "challenger": NEW}
    )
    assert {s.role for s in out.snapshots} == {"champion", "served"}
    assert "loans" not in state.challenges


def test_a_restored_state_continues_exactly_like_an_uninterrupted_one() -> None:
    data = labelled(examples("loans", 2, 1200, seed=5))
    models: dict[Role, Served | None] = {"champion": OLD, "challenger": NEW}
    whole = feed(EvaluatorState(snapshot_every=100), data, models)

    first = EvaluatorState(snapshot_every=100)
    part = feed(first, data[:150], models)
    restored: EvaluatorState = pickle.loads(pickle.dumps(first))  # noqa: S301 - our own bytes
    rest = feed(restored, data[100:], models)  # redelivers 50 examples after the "crash"
    assert rest.duplicates == 50
    assert [s.event_id for s in part.snapshots + rest.snapshots] == [
        s.event_id for s in whole.snapshots
    ]
    assert [s.values for s in part.snapshots + rest.snapshots] == [
        s.values for s in whole.snapshots
    ]
    assert [d.decision_id for d in part.decisions + rest.decisions] == [
        d.decision_id for d in whole.decisions
    ]
    assert len(whole.decisions) == 1


def test_no_champion_nothing_scored_but_positions_advance() -> None:
    state = EvaluatorState()
    out = feed(state, labelled(examples("loans", 2, 10, seed=3)), {"champion": None})
    assert out.scored == 0 and state.positions[(TOPIC, 0)] == 10


def test_memory_stays_bounded_while_an_online_champion_moves_on() -> None:
    state = EvaluatorState(snapshot_every=1000, keep_tracks=3, dedupe_ids=500)
    data = labelled(examples("loans", 0, 2000, seed=3))
    for i in range(0, 2000, 100):  # a new champion version every 100 examples
        online = Served(version=10 + i // 100, predictor=OLD.predictor)
        state.handle(data[i : i + 100], config=CFG, models={"champion": online})
    assert len(state.board.tracks) == 3 + 1  # and the stream's one served track
    assert {v for _, v, r in state.board.tracks if r != "served"} == {27, 28, 29}
    assert len(state.seen["loans"]) == 500


def test_a_regression_stream_is_scored_by_mae_whatever_the_flavor() -> None:
    import itertools

    from river import linear_model, preprocessing
    from river.datasets import synth
    from sklearn.tree import DecisionTreeRegressor

    from schemas import StreamConfig
    from services.common.predictor import Predictor

    names = [f"x{i}" for i in range(10)]
    cfg = StreamConfig.model_validate(
        {
            "stream": "friedman",
            "version": 1,
            "spec": {
                "features": [{"name": n, "type": "number"} for n in names],
                "label": {"kind": "number"},
            },
            "policy": {"rolling_window": 200, "shadow_min_examples": 150},
        }
    )
    data = [
        ({f"x{k}": float(v) for k, v in x.items()}, float(y))
        for x, y in itertools.islice(synth.Friedman(seed=1), 3000)
    ]
    river_model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    for x, y in data[:1000]:
        river_model.learn_one(x, y)
    linear = Predictor.river(river_model, spec=cfg.spec, spec_sha256=cfg.spec_sha256())
    shallow = Predictor.sklearn(
        DecisionTreeRegressor(max_depth=2, random_state=0),
        spec=cfg.spec,
        spec_sha256=cfg.spec_sha256(),
    )
    assert shallow.vectorizer is not None
    shallow.model.fit(
        shallow.vectorizer.matrix([x for x, _ in data[:1000]]), [y for _, y in data[:1000]]
    )
    items = [
        Labelled(
            example=LabelledExample(
                stream="friedman",
                example_id=str(i),
                features=dict(x),
                label=y,
                event_time=examples("x", 0, 1, 0)[0].event_time,
            ),
            topic=TOPIC,
            partition=1,
            offset=i,
            timestamp_s=float(i),
        )
        for i, (x, y) in enumerate(data[1000:])
    ]
    state = EvaluatorState(snapshot_every=500)
    out = feed(
        state,
        items,
        {"champion": Served(1, shallow), "challenger": Served(2, linear)},
        cfg=cfg,
    )
    (decision,) = out.decisions
    assert (
        decision.kind == "promote"
        and decision.verdict.values["challenger_mae"] < decision.verdict.values["champion_mae"]
    )
    last = [s for s in out.snapshots if s.role != "served"][-1]
    assert {"mae", "rmse", "r2", "rolling_mae", "rolling_rmse", "rolling_r2"} == set(last.values)


def test_the_served_track_runs_across_a_swap() -> None:
    state = EvaluatorState(snapshot_every=500)
    data = labelled(examples("loans", 2, 1200, seed=3))
    before = feed(state, data[:600], {"champion": OLD})
    after = feed(state, data[600:], {"champion": NEW})
    served = [s for s in before.snapshots + after.snapshots if s.role == "served"]
    assert [s.example_count for s in served] == list(range(100, 1201, 100))
    assert [s.version for s in served] == [1] * 6 + [2] * 6
    # the rolling accuracy shows the swap: the old concept's model, then the new one's
    assert served[5].values["rolling_accuracy"] < 0.7 < served[-1].values["rolling_accuracy"]
    assert len({s.event_id for s in served}) == len(served)


def test_evidence_against_the_online_model_accumulates_across_its_snapshots() -> None:
    data = labelled(examples("loans", 2, 1500, seed=3))  # concept 2: the online model's

    def run(family: str | None) -> list:
        state = EvaluatorState(snapshot_every=1000, look_every=50)
        decisions = []
        for i in range(0, len(data), 100):  # a new online snapshot every 100 examples
            online = Served(version=10 + i // 100, predictor=NEW.predictor, family=family)
            out = state.handle(
                data[i : i + 100], config=CFG, models={"champion": OLD, "challenger": online}
            )
            decisions += out.decisions
        return decisions

    # as separate versions, no pair ever gathers the 200 examples the rule needs
    assert run(family=None) == []
    # as one learning model, the evidence adds up and the latest snapshot is promoted
    (decision,) = run(family="online")
    assert decision.kind == "promote" and decision.champion == 1 and decision.target >= 11


class Picky:
    """A predictor that fails on any row whose salary is negative (and on batches of them)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def _check(self, xs: Sequence[dict[str, object]]) -> None:
        if any(float(x["salary"]) < 0 for x in xs):  # type: ignore[arg-type]
            raise ValueError("negative salary")

    def predict_many(self, xs: Sequence[dict[str, object]]) -> list[object]:
        self._check(xs)
        return self.inner.predict_many(xs)  # type: ignore[attr-defined, no-any-return]

    def predict_proba_many(self, xs: Sequence[dict[str, object]]) -> list[object]:
        self._check(xs)
        return self.inner.predict_proba_many(xs)  # type: ignore[attr-defined, no-any-return]


def test_an_example_a_model_fails_on_is_refused_and_the_rest_scored() -> None:
    """One example the challenger cannot predict is scored by no role and returned as
    refused; the other 99 of the batch are scored by both."""
    data = examples("loans", 0, 100, seed=3)
    data[40] = data[40].model_copy(update={"features": {**data[40].features, "salary": -1.0}})
    picky = Served(version=2, predictor=Picky(NEW.predictor))  # type: ignore[arg-type]
    state = EvaluatorState(snapshot_every=1000)
    out = state.handle(labelled(data), config=CFG, models={"champion": OLD, "challenger": picky})
    assert out.scored == 99 and [item.offset for item, _ in out.refused] == [40]
    assert "challenger v2: ValueError: negative salary" in out.refused[0][1]
    for role, version in (("champion", 1), ("challenger", 2)):
        metrics = state.board.get("loans", version, role)
        assert metrics is not None and metrics.example_count == 99
