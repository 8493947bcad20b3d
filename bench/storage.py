"""storage: how much the registry's database and artifact store grow from N to 10N
examples with automatic retention (the default settings), against the same run with
retention turned off (``DRIFTLINE_REGISTRY_KEEP_*=0``: every checkpoint and online artifact
kept, as before issue 14).

No broker: the learner's registry traffic is replayed on the registry itself (a real
SQLite file and a real artifact directory): a River Hoeffding tree learns a synthetic
stream, and each step saves a checkpoint of its state (the model plus a window of
example ids, as the learner's is) per partition; every few steps an online version is
registered and ``online`` and ``champion`` follow it, as the learner moves them.
Value and baseline are ``size after 10N / size after N`` (database + WAL + artifacts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import tree
from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, Stopwatch, emit
from schemas import AliasReason, Lineage, StreamConfig
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.registry.client import Registry, Retention
from services.registry.sql_store import SqlStore

STREAM = "storage"
CONFIG = StreamConfig.model_validate(
    {
        "stream": STREAM,
        "version": 1,
        "spec": {
            "features": [
                {"name": "salary", "type": "number"},
                {"name": "commission", "type": "number"},
                {"name": "age", "type": "number"},
                {"name": "elevel", "type": "number"},
                {"name": "car", "type": "number"},
                {"name": "zipcode", "type": "number"},
                {"name": "hvalue", "type": "number"},
                {"name": "hyears", "type": "number"},
                {"name": "loan", "type": "number"},
            ],
            "label": {"kind": "class", "classes": [0, 1]},
        },
    }
)


@dataclass(frozen=True)
class Sizes:
    """Bytes on disk: the database file (with its WAL) and the artifact store."""

    database: int
    artifacts: int

    @property
    def total(self) -> int:
        """Both together."""
        return self.database + self.artifacts


def measure(settings: DriftlineSettings, registry: Registry, *, fold_wal: bool = False) -> Sizes:
    """What ``registry`` occupies now: its SQLite file with the WAL (PostgreSQL: its
    tables with their indexes and TOAST), and its artifact directory.

    ``fold_wal``: SQLite's write-ahead log is first checkpointed and truncated, so the
    database's size is what it holds, not how full its (capped) log happens to be.
    """
    assert isinstance(registry.backend, SqlStore)  # noqa: S101 - opened from a SQL URL
    engine = registry.backend.engine
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
            (total,) = cursor.fetchone() or (0,)
            database = int(total)
        else:
            if fold_wal:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db = settings.data_path / "registry.db"
            files = (db, Path(f"{db}-wal"), Path(f"{db}-shm"))
            database = sum(p.stat().st_size for p in files if p.exists())
    finally:
        raw.close()
    root = settings.data_path / "artifacts"
    artifacts = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return Sizes(database, artifacts)


def _tree() -> Any:
    """A small Hoeffding tree (it stops growing at depth 10: a state of steady size)."""
    return tree.HoeffdingTreeClassifier(grace_period=100, max_depth=10)


@dataclass
class Learner:
    """The learner's registry traffic for one stream spread over ``partitions``."""

    registry: Registry
    partitions: int = 1
    examples_per_step: int = 200
    version_every: int = 2  # steps between online versions
    dedupe_window: int = 20_000  # example ids kept in the checkpointed state
    warm_up: int = 5_000  # examples learned before the first step: a state of steady size

    def __post_init__(self) -> None:
        self.model = _tree()
        self.examples: Iterator[tuple[dict[str, Any], Any]] = iter(synth.Agrawal(seed=7))
        self.ids: deque[str] = deque(maxlen=self.dedupe_window)
        self.seen = 0
        self.steps = 0
        self.version: int | None = None
        for _ in range(self.warm_up):
            self.model.learn_one(*next(self.examples))
        self.ids.extend(f"warm-up-{i:012d}-{'x' * 24}" for i in range(self.dedupe_window))

    def step(self) -> None:
        """Learn one batch, checkpoint every partition, maybe register an online version."""
        for _ in range(self.examples_per_step):
            x, y = next(self.examples)
            self.model.learn_one(x, y)
            self.ids.append(f"{STREAM}-{self.seen:012d}-{'x' * 24}")
            self.seen += 1
        self.steps += 1
        for p in range(self.partitions):
            self.registry.save_checkpoint(
                owner="learner",
                key=f"driftline-learner/examples.valid/{p}",
                state={"model": self.model, "ids": self.ids, "next_offset": self.seen},
                offsets={str(p): self.seen},
                meta={"streams": {STREAM: self.seen}},
            )
        if self.steps % self.version_every == 0:
            self.register()

    def register(self) -> None:
        """An online version; ``online`` and ``champion`` follow it."""
        predictor = Predictor.river(self.model, spec=CONFIG.spec, spec_sha256=CONFIG.spec_sha256())
        created = self.registry.register_version(
            model=STREAM,
            kind="online",
            predictor=predictor,
            params={"pipeline": {"class": "river.tree.HoeffdingTreeClassifier"}},
            metrics={"accuracy": 0.9},
            lineage=Lineage(example_count=self.seen),
            parent_version=self.version,
            idempotency_key=f"learner:{STREAM}:{self.seen}",
        )
        self.version = created.version
        for alias in ("online", "champion"):
            current = self.registry.get_alias(model=STREAM, alias=alias)
            self.registry.move_alias(
                model=STREAM,
                alias=alias,
                to_version=created.version,
                expect=current,
                reason=AliasReason.COLD_START if current is None else AliasReason.ONLINE_UPDATE,
                actor="learner",
            )


def grow(
    data_dir: Path,
    *,
    retention: Retention,
    steps: int,
    shape: Mapping[str, int] | None = None,
    fold_wal: bool = False,
    registry_url: str | None = None,
) -> tuple[Sizes, Sizes]:
    """Sizes after ``steps`` and after ``10 * steps`` steps of one :class:`Learner` of
    ``shape`` (its fields: partitions, examples per step...; ``fold_wal``: see
    :func:`measure`), on ``registry_url`` (default: SQLite in ``data_dir``)."""
    settings = DriftlineSettings.load(
        env={},
        data_dir=data_dir,
        registry_url=registry_url,
        signing_key=SIGNING_KEY,
        signing_key_id="bench",
        registry_keep_checkpoints=retention.keep_checkpoints,
        registry_keep_online_versions=retention.keep_online_versions,
    )
    registry = Registry.open(settings, relay=False)
    try:
        driver = Learner(registry, **(shape or {}))
        for _ in range(steps):
            driver.step()
        first = measure(settings, registry, fold_wal=fold_wal)
        for _ in range(9 * steps):
            driver.step()
        return first, measure(settings, registry, fold_wal=fold_wal)
    finally:
        registry.close()


def _mb(n: int) -> float:
    return n / 1e6


def run(quick: bool) -> Result:
    """Run the benchmark; ``quick`` steps 20 then 200 times instead of 40 then 400."""
    steps = 20 if quick else 40
    shape = {"partitions": 2, "examples_per_step": 200, "version_every": 2}
    retained = Retention()
    rows: list[tuple[Any, ...]] = []
    growth: dict[str, float] = {}
    sizes: dict[str, tuple[Sizes, Sizes]] = {}
    with Stopwatch() as sw:
        for label, retention in (("retention", retained), ("no retention", Retention(0, 0))):
            with tempfile.TemporaryDirectory(prefix="driftline-bench-storage-") as tmp:
                first, last = grow(Path(tmp), retention=retention, steps=steps, shape=shape)
            sizes[label] = (first, last)
            growth[label] = last.total / first.total
            for what, a, b in (
                ("database", first.database, last.database),
                ("artifacts", first.artifacts, last.artifacts),
                ("total", first.total, last.total),
            ):
                rows.append((label, what, _mb(a), _mb(b), b / a if a else 0.0))
    n = steps * shape["examples_per_step"]
    versions = steps // shape["version_every"]
    return Result(
        "storage",
        growth["retention"],
        "x (size at 10N / size at N)",
        growth["no retention"],
        rows=rows,
        columns=("run", "what", "MB after N", "MB after 10N", "10N / N"),
        extra={
            "n_examples": n,
            "partitions": shape["partitions"],
            "online_versions_at_n": versions,
            "keep_checkpoints": retained.keep_checkpoints,
            "keep_online_versions": retained.keep_online_versions,
            "seconds": round(sw.seconds, 1),
            "total_mb_10n": round(_mb(sizes["retention"][1].total), 2),
            "total_mb_10n_no_retention": round(_mb(sizes["no retention"][1].total), 2),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.storage [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.storage")
    parser.add_argument("--quick", action="store_true")
    emit(run(parser.parse_args(argv).quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
