"""What the evaluator keeps, and what a batch of labelled examples does to it.

Pure: no Kafka, no registry. The edge hands in the model versions it has loaded (fixed
snapshots) and gets back metric snapshots to publish and decisions to carry out.
:class:`EvaluatorState` is picklable; the edge checkpoints it (signed) together with the
next offset of every partition it reads, so a restart continues exactly where it
stopped and re-emits the same event ids.

An example is scored by a version only if that version did not learn from it: an
example inside the version's lineage (its training offsets) is skipped for that version
and counted, so a lagging evaluator never flatters an online model with examples it
has already learned.

One record never fails a batch: an example a version cannot predict (or that cannot be
scored) is left out of every role's metrics and returned in :attr:`Outcome.refused`
with the error, for the edge to dead-letter; the rest of the batch is scored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas import LabelledExample, Lineage, MetricSnapshot, ShadowPair, StreamConfig, derive_id
from services.common.batches import batch_or_each
from services.common.predictor import Predictor
from services.evaluator.decision import (
    Challenge,
    PromotionRule,
    RollbackRule,
    Verdict,
    Watch,
)
from services.evaluator.join import ShadowJoin
from services.evaluator.scoring import Scoreboard, example_score

__all__ = [
    "Decision",
    "EvaluatorState",
    "Labelled",
    "Outcome",
    "Served",
    "learned_from",
]

Role = Literal["champion", "challenger", "predecessor"]
ROLES: tuple[Role, ...] = ("champion", "challenger", "predecessor")


def learned_from(lineage: Lineage, topic: str, partition: int, offset: int) -> bool:
    """Whether the offset lies in one of the lineage's half-open ranges.

    >>> from schemas.lineage import OffsetRange
    >>> lin = Lineage(ranges=(OffsetRange(topic="v", partition=0, start=10, end=20),))
    >>> learned_from(lin, "v", 0, 19), learned_from(lin, "v", 0, 20), learned_from(lin, "v", 1, 15)
    (True, False, False)
    """
    return any(
        r.topic == topic and r.partition == partition and r.start <= offset < r.end
        for r in lineage.ranges
    )


@dataclass(frozen=True)
class Served:
    """A model version the edge has loaded, in one role."""

    version: int
    predictor: Predictor
    lineage: Lineage = field(default_factory=Lineage)
    family: str | None = None  # "online": successive snapshots of one learning model


@dataclass(frozen=True)
class Labelled:
    """A labelled example with its position (``timestamp_s``: the record's time)."""

    example: LabelledExample
    topic: str
    partition: int
    offset: int
    timestamp_s: float


@dataclass(frozen=True)
class Decision:
    """An alias move the evidence calls for; the edge carries it out (compare-and-set)."""

    kind: Literal["promote", "rollback"]
    stream: str
    champion: int  # the champion now (the compare-and-set expectation)
    target: int  # the challenger to promote, or the predecessor to restore
    verdict: Verdict

    @property
    def decision_id(self) -> str:
        """Deterministic: the same evidence on a replay names the same decision."""
        return str(
            derive_id(f"{self.stream}/{self.kind}/{self.champion}->{self.target}", "evaluator")
        )

    def evidence(self) -> dict[str, Any]:
        """What the alias move carries."""
        return {"decision_id": self.decision_id, **self.verdict.evidence()}


@dataclass
class Outcome:
    """What one batch did."""

    snapshots: list[MetricSnapshot] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    scored: int = 0
    duplicates: int = 0
    learned_skips: int = 0
    from_shadow: int = 0
    refused: list[tuple[Labelled, str]] = field(default_factory=list)  # (example, error)


@dataclass
class EvaluatorState:
    """Positions, de-duplication ids, live metrics, pending shadow pairs and open tests.

    Parameters
    ----------
    snapshot_every
        Examples per (stream, version, role) between two metric snapshots.
    dedupe_ids
        Example ids remembered per stream for de-duplication (oldest forgotten first).
    join_window_s, join_max_pending
        Bounds of the shadow-pair join.
    look_every
        Pairs between two looks of the promotion test.
    rollback_min_examples
        Pairs in the window before the rollback rule may act (None: the policy's
        ``shadow_min_examples``).
    keep_tracks
        Metric tracks (version, role) kept per stream, the most recently scored.
    """

    snapshot_every: int = 500
    dedupe_ids: int = 200_000
    join_window_s: float = 3600.0
    join_max_pending: int = 100_000
    look_every: int = 50
    rollback_min_examples: int | None = None
    keep_tracks: int = 8
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    seen: dict[str, OrderedDict[str, None]] = field(default_factory=dict)
    board: Scoreboard = field(init=False)
    join: ShadowJoin = field(init=False)
    challenges: dict[str, Challenge] = field(default_factory=dict)
    watches: dict[str, Watch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.board = Scoreboard(every=self.snapshot_every)
        self.join = ShadowJoin(window_s=self.join_window_s, max_pending=self.join_max_pending)

    # -- positions and inputs -----------------------------------------------------------

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """Record that everything up to ``offset`` of this partition is handled."""
        self.positions[(topic, partition)] = offset + 1

    def add_pair(self, pair: ShadowPair, *, now: float) -> None:
        """A shadow pair from serving; it waits for its label."""
        self.join.add(pair, now=now)

    def _first_time(self, stream: str, example_id: str) -> bool:
        ids = self.seen.setdefault(stream, OrderedDict())
        if example_id in ids:
            return False
        ids[example_id] = None
        while len(ids) > self.dedupe_ids:
            ids.popitem(last=False)
        return True

    # -- watches (started by the edge, which reads the alias history) --------------------

    def watch(
        self, stream: str, *, metric: str, champion: int, predecessor: int, window: int
    ) -> Watch:
        """Start (or keep) watching ``champion`` against ``predecessor``."""
        current = self.watches.get(stream)
        if current is not None and (current.champion, current.predecessor) == (
            champion,
            predecessor,
        ):
            return current
        self.watches[stream] = Watch(
            stream=stream, metric=metric, champion=champion, predecessor=predecessor, window=window
        )
        return self.watches[stream]

    def unwatch(self, stream: str) -> Watch | None:
        """Stop watching the stream's champion."""
        return self.watches.pop(stream, None)

    # -- the work ------------------------------------------------------------------------

    def handle(
        self,
        batch: Sequence[Labelled],
        *,
        config: StreamConfig,
        models: Mapping[Role, Served | None],
        model: str | None = None,
    ) -> Outcome:
        """Score a batch of one stream's labelled examples with the served versions.

        Every version scores each new example it has not learned from; the champion and
        challenger pair feeds the promotion test, the champion and predecessor pair the
        rollback rule (when a watch is open for this champion).
        """
        out = Outcome()
        if not batch:
            return out
        stream = batch[0].example.stream
        name = model or stream
        task = config.spec.label.kind
        policy = config.policy
        metric = policy.primary_metric_for(task)
        window = policy.rolling_window
        fresh: list[Labelled] = []
        for item in batch:
            self.advance(item.topic, item.partition, item.offset)
            if self._first_time(stream, item.example.example_id):
                fresh.append(item)
            else:
                out.duplicates += 1
        if not fresh:
            return out
        champion = models.get("champion")
        challenger = models.get("challenger")
        if (
            challenger is not None
            and champion is not None
            and challenger.version == champion.version
        ):
            challenger = None
        watch = self.watches.get(stream)
        predecessor = models.get("predecessor")
        if watch is None or champion is None or watch.champion != champion.version:
            predecessor = None
        elif predecessor is not None and predecessor.version != watch.predecessor:
            predecessor = None
        candidates: tuple[tuple[Role, Served | None], ...] = (
            ("champion", champion),
            ("challenger", challenger),
            ("predecessor", predecessor),
        )
        served: dict[Role, Served] = {role: m for role, m in candidates if m is not None}
        pairs = [
            self.join.take(stream, item.example.example_id, now=item.timestamp_s) for item in fresh
        ]
        failed: dict[int, str] = {}
        answers = {
            role: self._answers(m, role, fresh, pairs, task, out, failed)
            for role, m in served.items()
        }
        promote = PromotionRule(
            min_examples=policy.shadow_min_examples,
            confidence=policy.shadow_confidence,
            margin=policy.margin,
            look_every=self.look_every,
        )
        min_rb = min(self.rollback_min_examples or policy.shadow_min_examples, window)
        rollback = RollbackRule(min_examples=min_rb, margin=policy.rollback_margin, window=window)
        challenge = self._challenge(stream, metric, champion, challenger)
        for i, item in enumerate(fresh):
            ex = item.example
            if i in failed:
                out.refused.append((item, failed[i]))
                continue
            try:  # scored by every role or by none: the scores first, then the records
                scores = {
                    role: example_score(metric, task, ex.label, *answer)
                    for role, answer in ((r, answers[r][i]) for r in served)
                    if answer is not None
                }
            except Exception as exc:  # noqa: BLE001 - an answer that cannot be scored
                out.refused.append((item, f"scoring: {type(exc).__name__}: {exc}"))
                continue
            for role, m in served.items():
                answer = answers[role][i]
                if answer is None:
                    continue
                prediction, proba = answer
                snap = self.board.record(
                    stream,
                    name,
                    m.version,
                    role,
                    task,
                    window,
                    ex.label,
                    prediction,
                    proba,
                    ex.event_time,
                )
                if snap is not None:
                    out.snapshots.append(snap)
                if role == "champion":
                    served_snap = self.board.record_served(
                        stream,
                        name,
                        m.version,
                        task,
                        window,
                        ex.label,
                        prediction,
                        proba,
                        ex.event_time,
                    )
                    if served_snap is not None:
                        out.snapshots.append(served_snap)
            if scores:
                out.scored += 1
            if policy.frozen:
                continue
            if challenge is not None and champion is not None and challenger is not None:
                if "champion" in scores and "challenger" in scores:
                    verdict = challenge.add(scores["champion"], scores["challenger"], promote)
                    if verdict is not None and verdict.decide:
                        challenge.decided = True
                        out.decisions.append(
                            Decision(
                                "promote", stream, champion.version, challenger.version, verdict
                            )
                        )
            if watch is not None and predecessor is not None and champion is not None:
                if "champion" in scores and "predecessor" in scores:
                    verdict = watch.add(scores["champion"], scores["predecessor"], rollback)
                    if verdict is not None and verdict.decide:
                        watch.decided = True
                        out.decisions.append(
                            Decision(
                                "rollback", stream, champion.version, predecessor.version, verdict
                            )
                        )
        self.board.prune(stream, keep=self.keep_tracks)
        return out

    def _challenge(
        self, stream: str, metric: str, champion: Served | None, challenger: Served | None
    ) -> Challenge | None:
        if champion is None or challenger is None:
            self.challenges.pop(stream, None)
            return None
        current = self.challenges.get(stream)
        # the evidence against the online model's snapshots accumulates across them: they
        # are one model that keeps learning, and a new snapshot every few hundred examples
        # would otherwise restart the test before it could ever conclude
        same = current is not None and (
            current.champion,
            current.family or current.challenger,
            current.metric,
        ) == (champion.version, challenger.family or challenger.version, metric)
        if current is None or not same:
            current = self.challenges[stream] = Challenge(
                stream=stream,
                metric=metric,
                champion=champion.version,
                challenger=challenger.version,
                family=challenger.family,
            )
        return current

    @staticmethod
    def _answers(
        served: Served,
        role: Role,
        fresh: Sequence[Labelled],
        pairs: Sequence[ShadowPair | None],
        task: str,
        out: Outcome,
        failed: dict[int, str],
    ) -> list[tuple[Any, dict[str, float] | None] | None]:
        """Each example's (prediction, probabilities) by this version, None when skipped.

        A joined shadow pair that names this version gives the answer served live. When
        the version fails on the batch, each example is predicted alone and the ones it
        fails on are added to ``failed`` (index -> error).
        """
        result: list[tuple[Any, dict[str, float] | None] | None] = [None] * len(fresh)
        todo: list[int] = []
        for i, item in enumerate(fresh):
            if learned_from(served.lineage, item.topic, item.partition, item.offset):
                out.learned_skips += 1
                continue
            pair = pairs[i]
            answer = None
            if pair is not None and role != "predecessor":
                candidate = pair.champion if role == "champion" else pair.challenger
                if candidate.version == served.version:
                    answer = candidate
            if answer is not None:
                result[i] = (answer.prediction, answer.probabilities)
                out.from_shadow += 1
            else:
                todo.append(i)
        if not todo:
            return result
        batch, errors = batch_or_each(
            lambda xs: _predict(served.predictor, xs, task),
            [fresh[i].example.features for i in todo],
        )
        for j, exc in errors.items():  # these examples are refused
            failed.setdefault(todo[j], f"{role} v{served.version}: {type(exc).__name__}: {exc}")
        for i, predicted in zip(todo, batch, strict=True):
            result[i] = predicted
        return result


def _predict(
    predictor: Predictor, xs: list[dict[str, Any]], task: str
) -> list[tuple[Any, dict[str, float] | None]]:
    predictions = predictor.predict_many(xs)
    probas = predictor.predict_proba_many(xs) if task == "class" else [None] * len(xs)
    return list(zip(predictions, probas, strict=True))
