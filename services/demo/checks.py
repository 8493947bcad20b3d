"""The demo's end-of-run checks: the loop closed, nothing was lost, the learner kept up.

Reads the registry's runs through its client; everything else comes from the folded
topics (:class:`~services.demo.state.DemoState`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import DriftlineSettings
from services.demo.state import DemoState
from services.registry.client import Registry

__all__ = ["LAG_WARNING", "Check", "LagSample", "end_checks", "lag_check"]

LAG_WARNING = 100  # examples the learner may lag the replay by before the demo warns


@dataclass
class Check:
    """One end-of-run assertion and its evidence; a check that is not ``required`` is a
    warning: reported, but it does not fail the run."""

    name: str
    ok: bool
    detail: str
    required: bool = True


@dataclass(frozen=True)
class LagSample:
    """One reading during the replay: wall time (ms), valid examples replayed, learned."""

    at_ms: int
    replayed: int
    learned: int

    @property
    def lag(self) -> int:
        """Examples the learner is behind the replay."""
        return max(0, self.replayed - self.learned)


def end_checks(
    settings: DriftlineSettings,
    state: DemoState,
    learned: float | None,
    *,
    expect_drift: bool,
    samples: list[LagSample] | None = None,
) -> list[Check]:
    """The end-of-run checks. The loop's four (drift, run, promotion, swap) are required
    when the stream has known drift points; a dataset with none (a file, a real-world
    stream) need not drift, so there they are reported, not required."""
    registry = Registry.open(settings, relay=False)
    try:
        runs = registry.list_runs(model=state.stream)
    finally:
        registry.close()
    lost = state.unaccounted()
    both = state.valid_ids & state.rejected_ids
    valid = len(state.valid_ids)
    loop = [
        Check("drift detected", bool(state.drifts), f"{len(state.drifts)} drift events"),
        Check(
            "training run",
            bool(runs),
            f"{len(runs)} runs: "
            + ", ".join(
                f"{r.status}{'' if r.winner_version is None else f' -> v{r.winner_version}'}"
                for r in runs[:5]
            ),
        ),
        Check(
            "promotion",
            bool(state.promotions()),
            ", ".join(
                f"v{m.from_version}->v{m.to_version} by {m.actor}" for m in state.promotions()
            )
            or "none",
        ),
        Check(
            "swap seen by serving",
            bool(state.swaps()),
            ", ".join(f"v{s.version} ({s.load_ms:.0f} ms)" for s in state.swaps()) or "none",
        ),
    ]
    if not expect_drift:
        loop = [
            Check(c.name, True, f"{c.detail} (not required: no known drift point)")
            if not c.ok
            else c
            for c in loop
        ]
    return [
        *loop,
        Check(
            "no example lost",
            not lost
            and not both
            and state.produced == valid + len(state.rejected_ids)
            and state.rejected_unreadable >= state.garbage_sent,
            f"produced {state.produced:,} = valid {valid:,} + rejected "
            f"{len(state.rejected_ids):,}; malformed bytes {state.garbage_sent} sent, "
            f"{state.rejected_unreadable} dead-lettered"
            + (f"; missing {len(lost)}" if lost else "")
            + (f"; both {len(both)}" if both else ""),
        ),
        Check(
            "learned = valid",
            learned is not None and int(learned) == valid,
            f"learned {learned if learned is None else int(learned):,}, valid {valid:,}",
        ),
        lag_check(samples or []),
    ]


def lag_check(samples: list[LagSample]) -> Check:
    """A warning (not required) when the learner lagged the replay by more than
    :data:`LAG_WARNING` examples: the served model was that far behind the stream.

    >>> lag_check([LagSample(0, 500, 450), LagSample(1, 900, 700)]).ok
    False
    """
    lags = sorted(s.lag for s in samples)
    if not lags:
        return Check("learner kept up", True, "no reading of the learner", required=False)
    worst = lags[-1]
    p50 = lags[len(lags) // 2]
    over = sum(1 for lag in lags if lag > LAG_WARNING)
    return Check(
        "learner kept up",
        worst <= LAG_WARNING,
        f"lag behind the replay: p50 {p50:,}, max {worst:,} examples"
        + (
            f"; over {LAG_WARNING} in {over} of {len(lags)} readings: replay slower (--rate)"
            if over
            else ""
        ),
        required=False,
    )
