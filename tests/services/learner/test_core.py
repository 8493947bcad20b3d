"""StreamLearner: one stream's state; pickled mid-stream it continues identically."""

from __future__ import annotations

import pickle

import pytest

from services.common.predictor import Predictor
from services.learner.core import StreamLearner
from tests.streams import agrawal, agrawal_config


def test_a_restored_learner_continues_exactly_like_an_uninterrupted_one() -> None:
    config = agrawal_config(drift={"cooldown": 500, "data_window": 200})
    data = list(agrawal(7, n=4000, switch_at=2000))
    whole = StreamLearner(config, metrics_every=250)
    expected = [whole.process(x, y) for x, y in data]

    first = StreamLearner(config, metrics_every=250)
    got = [first.process(x, y) for x, y in data[:1700]]
    restored: StreamLearner = pickle.loads(pickle.dumps(first))  # noqa: S301 - our own bytes
    got += [restored.process(x, y) for x, y in data[1700:]]

    assert got == expected
    assert restored.examples_seen == 4000
    assert any(o.alarms for o in expected)
    assert [o.example_count for o in expected if o.snapshot][:2] == [250, 500]


def test_predictor_is_a_frozen_copy() -> None:
    config = agrawal_config()
    learner = StreamLearner(config)
    data = list(agrawal(1, n=600))
    for x, y in data[:300]:
        learner.process(x, y)
    predictor = learner.predictor()
    assert isinstance(predictor, Predictor) and predictor.spec_sha256 == config.spec_sha256()
    before = predictor.predict_many([x for x, _ in data[300:]])
    for x, y in data[300:]:
        learner.process(x, y)
    assert predictor.predict_many([x for x, _ in data[300:]]) == before
    assert [learner.predict(x) for x, _ in data[:5]] == learner.predictor().predict_many(
        [x for x, _ in data[:5]]
    )


def test_inputs_are_left_untouched_and_versions_fall_due() -> None:
    config = agrawal_config(online_version_every=100)
    learner = StreamLearner(config)
    due = []
    for x, y in agrawal(2, n=300):
        copy = dict(x)
        due.append(learner.process(x, y).version_due)
        assert x == copy
    assert sum(due) == 3


def test_the_first_version_falls_due_early_then_every_k() -> None:
    """A new stream gets a version to serve after ``first_version_at`` examples, not K."""
    config = agrawal_config(online_version_every=200)
    early = StreamLearner(config, first_version_at=30)
    late = StreamLearner(config)
    at_or_above_k = StreamLearner(config, first_version_at=200)
    due: dict[str, list[int]] = {"early": [], "late": [], "k": []}
    for x, y in agrawal(2, n=600):
        for name, learner in (("early", early), ("late", late), ("k", at_or_above_k)):
            outcome = learner.process(x, y)
            if outcome.version_due:
                due[name].append(outcome.example_count)
    assert due == {"early": [30, 200, 400, 600], "late": [200, 400, 600], "k": [200, 400, 600]}
    restored = pickle.loads(pickle.dumps(early))  # noqa: S301 - our own bytes
    assert restored.first_version_at == 30 and not restored.process(x, y).version_due
    with pytest.raises(ValueError, match="first_version_at"):
        StreamLearner(config, first_version_at=-1)


def test_scheduled_retrains_count_from_the_last_alarm_or_request() -> None:
    config = agrawal_config(
        drift={"cooldown": 500, "data_drift": False}, retrain={"every": 700, "window": 500}
    )
    learner = StreamLearner(config)
    outcomes = [learner.process(x, y) for x, y in agrawal(3, n=4000, switch_at=2000)]
    alarms = [o.example_count for o in outcomes if o.alarms]
    due = [o.example_count for o in outcomes if o.retrain_due]
    assert alarms and 2000 < alarms[0] < 2500
    triggers = sorted([0, *alarms, *due])
    assert all(b - a <= 700 for a, b in zip(triggers, triggers[1:], strict=False))
    for count in due:  # each request comes exactly `every` after the trigger before it
        assert count - max(t for t in triggers if t < count) == 700
    assert due[:2] == [700, 1400]


def test_no_schedule_without_every_and_a_restored_old_learner_has_none_due() -> None:
    learner = StreamLearner(agrawal_config())
    assert not any(learner.process(x, y).retrain_due for x, y in agrawal(4, n=1500))
    scheduled = StreamLearner(agrawal_config(retrain={"every": 100}))
    del scheduled.last_trigger  # as pickled before the schedule existed: the class default
    assert [
        o.example_count for x, y in agrawal(5, n=250) if (o := scheduled.process(x, y)).retrain_due
    ] == [100, 200]
