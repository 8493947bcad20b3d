"""Automatic retention: checkpoints and online artifacts are pruned as they are written,
their bytes too (unless another row shares them), and what a rollback, the evaluator or
a running training needs is kept. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from bench.storage import grow
from schemas import AliasReason, utcnow
from services.common import artifacts
from services.common.settings import DriftlineSettings
from services.common.signing import checkpoint_subject
from services.registry.client import CheckpointItem, Registry, Retention
from services.registry.db import WAL_BYTES
from services.registry.errors import NotFound
from services.registry.tables import CheckpointRow
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor


def stored(registry: Registry) -> set[str]:
    return set(registry.backend.store.list_sha256())


def checkpoint_rows(registry: Registry, *, key: str) -> int:
    query = select(func.count()).select_from(CheckpointRow).where(CheckpointRow.key == key)
    with registry.backend.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def status(registry: Registry, version: int, model: str = "sea") -> str:
    found = registry.get_version(model=model, version=version)
    assert found is not None
    return found.status


def live_shas(registry: Registry, model: str) -> set[str]:
    return {
        v.artifact.sha256
        for v in registry.list_versions(model=model, limit=1000)
        if v.status != "archived"
    }


def follow(registry: Registry, model: str, version: int, *aliases: str) -> None:
    """Move ``aliases`` to ``version`` as the learner does (compare-and-set on what is there)."""
    for alias in aliases:
        current = registry.get_alias(model=model, alias=alias)
        registry.move_alias(
            model=model,
            alias=alias,
            to_version=version,
            expect=current,
            reason=AliasReason.COLD_START if current is None else AliasReason.ONLINE_UPDATE,
            actor="learner",
        )


# -- checkpoints ------------------------------------------------------------------------


def test_checkpoints_keep_the_newest_k_rows_and_bytes(registry: Registry) -> None:
    assert registry.backend.retention.keep_checkpoints == 3  # the default
    shas = [
        registry.save_checkpoint(owner="learner", key="g/t/0", state={"n": i}, offsets={"0": i})
        for i in range(6)
    ]
    assert checkpoint_rows(registry, key="g/t/0") == 3
    assert stored(registry) == set(shas[-3:])  # the bytes of the three pruned rows are gone
    cp = registry.load_checkpoint(owner="learner", key="g/t/0")
    assert cp is not None and cp.state == {"n": 5} and cp.offsets == {"0": 5}


def test_checkpoints_saved_together_keep_the_newest_k_per_key(registry: Registry) -> None:
    for i in range(5):
        registry.save_checkpoints(
            owner="learner",
            items=[
                CheckpointItem(key=f"g/t/0/streams/{s}", state=(s, i), offsets={"0": i})
                for s in ("a", "b_%")
            ],
        )
    assert checkpoint_rows(registry, key="g/t/0/streams/a") == 3
    assert checkpoint_rows(registry, key="g/t/0/streams/b_%") == 3
    assert len(stored(registry)) == 6


def test_the_newest_checkpoint_of_every_key_under_a_prefix(registry: Registry) -> None:
    for i in range(4):
        for key in ("g/t/1/streams/a", "g/t/1/streams/b_x", "g/t/10/streams/a", "g/t/1"):
            registry.save_checkpoint(owner="learner", key=key, state=(key, i), offsets={"1": i})
    registry.save_checkpoint(owner="evaluator", key="g/t/1/streams/c", state=0, offsets={})
    found = registry.load_checkpoints(owner="learner", prefix="g/t/1/streams/")
    assert [(cp.key, cp.state) for cp in found] == [
        ("g/t/1/streams/a", ("g/t/1/streams/a", 3)),
        ("g/t/1/streams/b_x", ("g/t/1/streams/b_x", 3)),
    ]
    assert registry.load_checkpoints(owner="learner", prefix="g/t/1/streams/b%") == []  # literal
    assert registry.load_checkpoints(owner="learner", prefix="g/t/2/") == []


def test_pruning_is_per_owner_and_key(registry: Registry) -> None:
    for i in range(5):
        registry.save_checkpoint(owner="learner", key="g/t/0", state=("a", i), offsets={})
    registry.save_checkpoint(owner="learner", key="g/t/1", state=("b", 0), offsets={})
    registry.save_checkpoint(owner="evaluator", key="g/t/0", state=("c", 0), offsets={})
    assert checkpoint_rows(registry, key="g/t/0") == 4  # 3 of the learner's, 1 evaluator's
    assert checkpoint_rows(registry, key="g/t/1") == 1
    evaluator = registry.load_checkpoint(owner="evaluator", key="g/t/0")
    assert evaluator is not None and evaluator.state == ("c", 0)


def test_bytes_shared_by_a_kept_row_stay(registry: Registry) -> None:
    """Content addressing: the same state saved under two keys is one blob."""
    registry.backend.retention = Retention(keep_checkpoints=1)
    shared = registry.save_checkpoint(owner="learner", key="a", state={"same": 1}, offsets={})
    assert registry.save_checkpoint(owner="learner", key="b", state={"same": 1}, offsets={}) == (
        shared
    )
    newer = registry.save_checkpoint(owner="learner", key="a", state={"new": 2}, offsets={})
    assert checkpoint_rows(registry, key="a") == 1
    assert stored(registry) == {shared, newer}  # key "b" still points at the shared bytes
    cp = registry.load_checkpoint(owner="learner", key="b")
    assert cp is not None and cp.state == {"same": 1}
    # the same bytes saved again under the same key: the pruned older row shares them
    again = registry.save_checkpoint(owner="learner", key="a", state={"new": 2}, offsets={})
    assert again == newer and newer in stored(registry)
    cp = registry.load_checkpoint(owner="learner", key="a")
    assert cp is not None and cp.state == {"new": 2}


def test_checkpoints_written_before_the_move_stay_readable(registry: Registry) -> None:
    """Rows from before migration 0003 hold their bytes themselves."""
    blob = artifacts.dump_blob({"legacy": True})
    signature = registry.keyring.sign(blob, checkpoint_subject("learner", "old"))
    with registry.backend.engine.begin() as conn:
        conn.execute(
            insert(CheckpointRow).values(
                owner="learner",
                key="old",
                offsets={"0": 7},
                blob=blob,
                sha256=signature.sha256,
                signature=signature.signature or "",
                key_id=signature.key_id or "",
                meta={},
                created_at=utcnow(),
            )
        )
    cp = registry.load_checkpoint(owner="learner", key="old")
    assert cp is not None and cp.state == {"legacy": True} and cp.offsets == {"0": 7}
    assert stored(registry) == set()
    registry.backend.retention = Retention(keep_checkpoints=1)
    new = registry.save_checkpoint(owner="learner", key="old", state={"new": 1}, offsets={})
    assert checkpoint_rows(registry, key="old") == 1 and stored(registry) == {new}


def test_missing_bytes_fall_back_to_the_previous_checkpoint(registry: Registry) -> None:
    registry.save_checkpoint(owner="learner", key="k", state={"n": 1}, offsets={"0": 1})
    newest = registry.save_checkpoint(owner="learner", key="k", state={"n": 2}, offsets={"0": 2})
    assert registry.backend.store.delete(newest)
    cp = registry.load_checkpoint(owner="learner", key="k")
    assert cp is not None and cp.state == {"n": 1} and cp.offsets == {"0": 1}


def test_retention_off_keeps_every_checkpoint(registry: Registry) -> None:
    registry.backend.retention = Retention(keep_checkpoints=0, keep_online_versions=0)
    for i in range(5):
        registry.save_checkpoint(owner="learner", key="k", state=i, offsets={})
    assert checkpoint_rows(registry, key="k") == 5 and len(stored(registry)) == 5


# -- online artifacts -------------------------------------------------------------------


def test_online_artifacts_beyond_the_newest_are_collected(registry: Registry) -> None:
    registry.backend.retention = Retention(keep_online_versions=3)
    batch = registry.register_version(model="sea", kind="batch", predictor=predictor(99))
    for i in range(10):
        v = registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
        follow(registry, "sea", v.version, "online", "champion")
    status = {v.version: v.status for v in registry.list_versions(model="sea")}
    # pruned as v11 registered, before the aliases followed it: the newest 3 online
    # (9, 10, 11) and what the last 3 moves of each alias touched (7->8, 8->9, 9->10)
    kept = {batch.version, 7, 8, 9, 10, 11}
    assert {v for v, s in status.items() if s == "registered"} == kept
    assert set(status) == set(range(1, 12))  # rows are never deleted: lineage stays
    assert stored(registry) == live_shas(registry, "sea")
    with pytest.raises(NotFound):
        registry.load_predictor(model="sea", version=3)
    assert registry.load_predictor(model="sea", version=batch.version) is not None


def test_a_rollback_target_survives(registry: Registry) -> None:
    """A batch champion replaced an online one: the online one stays restorable however
    many online versions follow, and the evaluator's rollback works."""
    registry.backend.retention = Retention(keep_online_versions=2)
    for i in range(3):
        v = registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
        follow(registry, "sea", v.version, "online", "champion")
    winner = registry.register_version(model="sea", kind="batch", predictor=predictor(50))
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=winner.version,
        expect=3,
        reason=AliasReason.PROMOTED,
        actor="trainer",
    )
    for i in range(8):
        v = registry.register_version(model="sea", kind="online", predictor=predictor(i + 10))
        follow(registry, "sea", v.version, "online")
    assert status(registry, 3) == "registered"
    assert status(registry, 5) == "archived"
    registry.rollback(model="sea", expect=winner.version, actor="evaluator")
    assert registry.get_alias(model="sea", alias="champion") == 3
    assert registry.load_predictor(model="sea", version=3) is not None
    assert stored(registry) == live_shas(registry, "sea")


def test_shared_artifact_bytes_stay_while_a_live_version_has_them(registry: Registry) -> None:
    registry.backend.retention = Retention(keep_online_versions=1)
    first = registry.register_version(model="sea", kind="online", predictor=predictor(7))
    registry.register_version(model="sea", kind="online", predictor=predictor(20))
    assert first.artifact.sha256 not in stored(registry)  # v1 archived, its bytes gone
    again = registry.register_version(model="sea", kind="online", predictor=predictor(7))
    assert again.artifact.sha256 == first.artifact.sha256  # stored again
    newest = registry.register_version(model="sea", kind="online", predictor=predictor(7))
    # v3 is archived now, but v4 has the same bytes: they stay
    assert status(registry, again.version) == "archived"
    assert registry.load_predictor(model="sea", version=newest.version) is not None
    assert stored(registry) == live_shas(registry, "sea") == {first.artifact.sha256}


def test_a_running_training_run_keeps_the_snapshots_it_scores(registry: Registry) -> None:
    registry.backend.retention = Retention(keep_online_versions=2)
    for i in range(4):
        v = registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
        follow(registry, "sea", v.version, "online", "champion")
    run, _ = registry.start_run(
        model="sea", trigger_event_id="drift-1", window={"champion_at_start": 4}
    )
    for i in range(8):
        v = registry.register_version(model="sea", kind="online", predictor=predictor(i + 10))
        follow(registry, "sea", v.version, "online", "champion")
    for version in (3, 4):  # the champion at the drift and the snapshot before it
        assert registry.load_predictor(model="sea", version=version) is not None
    registry.finish_run(run_id=run.id, status="rejected", decision="test")
    v = registry.register_version(model="sea", kind="online", predictor=predictor(30))
    follow(registry, "sea", v.version, "online", "champion")
    assert status(registry, 4) == "archived"
    assert stored(registry) == live_shas(registry, "sea")


def test_retention_off_keeps_every_online_artifact(registry: Registry) -> None:
    registry.backend.retention = Retention(keep_checkpoints=0, keep_online_versions=0)
    for i in range(12):
        registry.register_version(model="sea", kind="online", predictor=predictor(i + 1))
    assert {v.status for v in registry.list_versions(model="sea")} == {"registered"}
    assert len(stored(registry)) == 12


def test_settings_reach_the_registry(settings: DriftlineSettings) -> None:
    tuned = settings.model_copy(
        update={"registry_keep_checkpoints": 5, "registry_keep_online_versions": 0}
    )
    reg = Registry.open(tuned, relay=False)
    try:
        assert reg.backend.retention == Retention(keep_checkpoints=5, keep_online_versions=0)
    finally:
        reg.close()


# -- storage stays bounded ----------------------------------------------------------------


def test_storage_after_10n_is_within_1_2x_of_n(
    registry_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A learner's registry traffic (a real River tree; checkpoints of ~0.6 MB with their
    window of example ids) on a real database: from N to 10N examples the database and
    the artifact store grow at most 1.2x with retention, and about 10x without.

    SQLite is measured with its write-ahead log folded in (the log is capped on its own,
    see the next test); PostgreSQL as its tables' total relation size.
    """
    shape = {"examples_per_step": 100, "version_every": 2, "dedupe_window": 10_000}
    on, off = tmp_path / "on", tmp_path / "off"
    other_url = f"sqlite:///{off / 'registry.db'}"
    if registry_url.startswith("postgresql"):  # the second run needs its own database
        other_url = request.getfixturevalue("postgres").create_database()
    n, n10 = grow(
        on,
        retention=Retention(3, 4),
        steps=10,
        shape=shape,
        fold_wal=True,
        registry_url=registry_url,
    )
    m, m10 = grow(
        off, retention=Retention(0, 0), steps=10, shape=shape, fold_wal=True, registry_url=other_url
    )
    assert n10.artifacts <= 1.05 * n.artifacts, (n, n10)
    assert n10.total <= 1.2 * n.total, (n, n10)
    assert m10.total >= 5 * m.total and m10.artifacts >= 8 * m.artifacts, (m, m10)
    reg = Registry.open(
        DriftlineSettings.load(env={}, data_dir=on, registry_url=registry_url), relay=False
    )
    try:
        assert checkpoint_rows(reg, key="driftline-learner/examples.valid/0") == 3
        live = [v for v in reg.list_versions(model="storage", limit=1000) if v.status != "archived"]
        assert len(live) == 5  # the newest 4, and the one an alias left last
    finally:
        reg.close()


def test_the_write_ahead_log_stays_small(tmp_path: Path) -> None:
    """SQLite's WAL keeps its largest size unless told otherwise: it is cut back."""
    shape = {"examples_per_step": 50, "version_every": 1, "dedupe_window": 1_000}
    grow(tmp_path, retention=Retention(), steps=12, shape=shape)  # closes the registry
    reg = Registry.open(
        DriftlineSettings.load(
            env={}, data_dir=tmp_path, signing_key=private_key_for("k" * 16), signing_key_id="k"
        ),
        relay=False,
    )
    try:
        for i in range(300):  # more than WAL_PAGES pages of writes
            reg.mark_handled(consumer="c", event_id=f"{i:036d}")
        wal = tmp_path / "registry.db-wal"
        assert wal.stat().st_size <= WAL_BYTES + 64 * 4096
    finally:
        reg.close()
