"""scikit-learn candidates, a time-bounded successive-halving search, and metrics (pure).

Every function here takes arrays and returns plain values, so it runs the same in the
trainer's process pool, in ``driftline models reproduce`` and in the benchmark.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 3)); y = (X[:, 0] + 0.1 * rng.normal(size=400) > 0).astype(int)
>>> found = search("logistic_regression", "class", X, y, metric="accuracy", seed=1, budget_s=30)
>>> found.name, sorted(found.params), found.score > 0.8
('logistic_regression', ['C'], True)
>>> model = fit_final("logistic_regression", "class", found.params, X, y, seed=1)
>>> evaluate("class", y, model.predict(X))["accuracy"] > 0.8
True
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Task = Literal["class", "number"]
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})

# Hyper-parameter grids: small on purpose, the budget is seconds to minutes.
GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "logistic_regression": {"C": (0.01, 0.1, 1.0, 10.0)},
    "ridge": {"alpha": (0.1, 1.0, 10.0)},
    "hist_gradient_boosting": {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31)},
    "random_forest": {"n_estimators": (25, 50), "max_depth": (10, 20)},
}


class Unsupported(ValueError):
    """A candidate that does not fit the label kind (e.g. logistic regression on numbers)."""


def supports(name: str, task: Task) -> bool:
    """Whether candidate ``name`` can learn a ``task`` label.

    >>> supports("logistic_regression", "number"), supports("ridge", "number")
    (False, True)
    """
    return name in GRIDS and not (name == "logistic_regression" and task == "number")


def build(name: str, task: Task, params: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator for candidate ``name`` with ``params`` (rows may hold NaN)."""
    if not supports(name, task):
        raise Unsupported(f"candidate {name!r} cannot learn a {task} label")
    if name == "hist_gradient_boosting":
        cls = HistGradientBoostingClassifier if task == "class" else HistGradientBoostingRegressor
        return cls(max_iter=100, early_stopping=False, random_state=seed, **params)
    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    if name == "random_forest":
        cls_rf = RandomForestClassifier if task == "class" else RandomForestRegressor
        return make_pipeline(
            impute, cls_rf(random_state=seed, n_jobs=1, min_samples_leaf=2, **params)
        )
    if name == "logistic_regression":
        est: Any = LogisticRegression(max_iter=1000, random_state=seed, **params)
    else:
        est = RidgeClassifier(**params) if task == "class" else Ridge(**params)
    return make_pipeline(impute, StandardScaler(), est)


def evaluate(
    task: Task,
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Every metric that applies: accuracy, f1_macro (and log_loss with probabilities),
    or mae, rmse, r2.

    >>> evaluate("number", [1.0, 2.0], [1.0, 4.0])["mae"]
    1.0
    """
    if len(y_true) == 0:
        return {}
    if task == "class":
        out = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        }
        if proba is not None and classes is not None:
            clipped = np.clip(proba, 1e-15, 1.0)
            clipped = clipped / clipped.sum(axis=1, keepdims=True)
            out["log_loss"] = float(log_loss(y_true, clipped, labels=list(classes)))
        return out
    out = {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
    }
    if len(y_true) > 1:
        out["r2"] = float(r2_score(y_true, y_pred))
    return out


def model_metrics(task: Task, model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """:func:`evaluate` for a fitted scikit-learn model on ``X``."""
    proba = model.predict_proba(X) if task == "class" and hasattr(model, "predict_proba") else None
    classes = getattr(model, "classes_", None)
    return evaluate(task, y, model.predict(X), proba, classes)


def improvement(metric: str, value: float, reference: float) -> float:
    """How much ``value`` beats ``reference`` on ``metric`` (positive: better).

    >>> improvement("accuracy", 0.9, 0.8) > 0, improvement("mae", 0.9, 0.8) < 0
    (True, True)
    """
    return reference - value if metric in LOWER_IS_BETTER else value - reference


@dataclass(frozen=True)
class Trial:
    """One configuration scored at one rung of the search."""

    params: dict[str, Any]
    rows: int
    score: float
    fit_s: float


@dataclass(frozen=True)
class Found:
    """The best configuration of one candidate and how the search got there."""

    name: str
    params: dict[str, Any]
    score: float
    trials: tuple[Trial, ...] = field(default=())
    search_s: float = 0.0
    budget_hit: bool = False


def configurations(name: str, seed: int) -> list[dict[str, Any]]:
    """Every grid point of candidate ``name`` in a seed-determined order."""
    grid = GRIDS[name]
    keys = sorted(grid)
    configs = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]
    random.Random(seed).shuffle(configs)  # noqa: S311 - a reproducible order, not a secret
    return configs


def search(
    name: str,
    task: Task,
    X: np.ndarray,
    y: np.ndarray,
    *,
    metric: str,
    seed: int,
    budget_s: float,
    validation_fraction: float = 0.2,
    min_rows: int = 200,
) -> Found:
    """Successive halving over the candidate's grid within ``budget_s`` seconds.

    The newest ``validation_fraction`` of the (time-ordered) rows validates; rung r fits
    the surviving configurations on the newest ``n / 2**(R-r)`` training rows and keeps the
    better half. When the budget runs out the best configuration scored so far wins (the
    first rung of the first configuration always completes).
    """
    started = time.perf_counter()
    deadline = started + budget_s
    configs = configurations(name, seed)
    n = len(y)
    n_valid = max(1, int(n * validation_fraction)) if n > 2 else 0
    if n_valid == 0 or len(configs) == 1 or n - n_valid < 2:
        return Found(name, configs[0], math.nan, (), time.perf_counter() - started)
    X_fit, y_fit, X_val, y_val = X[:-n_valid], y[:-n_valid], X[-n_valid:], y[-n_valid:]
    rungs = max(1, math.ceil(math.log2(len(configs))) + 1)
    trials: list[Trial] = []
    alive = list(range(len(configs)))
    best = 0  # the best configuration of the highest rung that scored any
    budget_hit = False
    for rung in range(rungs):
        size = len(y_fit) if rung == rungs - 1 else max(min_rows, len(y_fit) >> (rungs - 1 - rung))
        size = min(size, len(y_fit))
        scored: list[tuple[float, int]] = []  # (signed score, -index): higher is better
        for index in alive:
            if trials and time.perf_counter() > deadline:
                budget_hit = True
                break
            t0 = time.perf_counter()
            try:
                model = build(name, task, configs[index], seed)
                with threadpool_limits(1):
                    model.fit(X_fit[-size:], y_fit[-size:])
                value = model_metrics(task, model, X_val, y_val).get(metric, math.nan)
            except ValueError:  # e.g. a single class in a small rung
                value = math.nan
            trials.append(Trial(configs[index], size, value, time.perf_counter() - t0))
            signed = -math.inf if math.isnan(value) else improvement(metric, value, 0.0)
            scored.append((signed, -index))
        if scored:
            best = -max(scored)[1]
        if budget_hit or len(alive) == 1:
            break
        scored.sort(reverse=True)
        alive = [-i for _, i in scored[: max(1, math.ceil(len(scored) / 2))]]
    chosen = configs[best]
    score = next((t.score for t in reversed(trials) if t.params == chosen), math.nan)
    return Found(name, chosen, score, tuple(trials), time.perf_counter() - started, budget_hit)


def fit_final(
    name: str, task: Task, params: dict[str, Any], X: np.ndarray, y: np.ndarray, *, seed: int
) -> Any:
    """Fit candidate ``name`` with ``params`` on all of ``X``: the model that is registered."""
    model = build(name, task, params, seed)
    with threadpool_limits(1):  # the same arithmetic wherever it runs: reproducible bytes
        model.fit(X, y)
    return model


@dataclass(frozen=True)
class Fitted:
    """What a worker process returns: the search, the final model and the fit times."""

    found: Found
    model: Any
    search_s: float
    final_fit_s: float

    @property
    def fit_s(self) -> float:
        """Search and final fit together: the candidate's wall time in its worker."""
        return self.search_s + self.final_fit_s


def search_and_fit(
    name: str,
    task: Task,
    X: np.ndarray,
    y: np.ndarray,
    *,
    metric: str,
    seed: int,
    budget_s: float,
) -> Fitted:
    """:func:`search`, then :func:`fit_final` on every training row (a process-pool task)."""
    with threadpool_limits(1):  # one core per candidate: the pool runs them side by side
        found = search(name, task, X, y, metric=metric, seed=seed, budget_s=budget_s)
        t0 = time.perf_counter()
        model = fit_final(name, task, found.params, X, y, seed=seed)
    return Fitted(found, model, found.search_s, time.perf_counter() - t0)


def warm() -> int:
    """A no-op task that makes a fresh worker process import scikit-learn ahead of a run."""
    import os

    return os.getpid()


def init_worker(pid: int, nice: int = 0) -> None:
    """Pool initializer: lower this worker's priority by ``nice`` (fits are background
    work: the learner, serving and the evaluator come first on a shared machine), then
    :func:`watch_parent`.

    With a nice value the worker first starts a session of its own: under the kernel's
    autogroup scheduling CPU is shared between sessions before nice values count, so a
    worker left in the trainer's session would still take a whole session's share from
    the learner; leading its own, it gives its niceness to that session's group
    (:func:`services.common.priority.lower_priority`). It still exits with the trainer
    (:func:`watch_parent`, and the trainer stops its pool on the way out).
    """
    import os

    from services.common.priority import lower_priority

    if nice:
        try:
            os.setsid()
        except PermissionError:  # already leads a process group: keep its session
            pass
        lower_priority(nice)
    watch_parent(pid)


def watch_parent(pid: int, every_s: float = 1.0) -> None:
    """Pool initializer: exit this worker once process ``pid`` (the trainer) is gone.

    A trainer killed with SIGKILL cannot stop its pool, and the workers, blocked on a
    queue whose other end they share, would otherwise live on as orphans.
    """
    import os
    import threading

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the pid now belongs to someone else's process
                os._exit(0)

    threading.Thread(target=watch, name="watch-trainer", daemon=True).start()
