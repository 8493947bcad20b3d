"""The fit pool: its workers run below the trainer's priority, so a run's fits take only the
CPU the learner, serving and the evaluator leave."""

from __future__ import annotations

import os

from services.trainer.app import make_pool, stop_pool


def test_fit_workers_run_nice_steps_below_the_trainer() -> None:
    pool = make_pool(1, nice=7)
    try:
        worker = pool.submit(os.nice, 0).result(timeout=120)  # os.nice(0): its niceness now
    finally:
        stop_pool(pool)
    assert worker == os.nice(0) + 7
