"""A batch champion is challenged by the latest online snapshot when no challenger is set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from schemas.models import ArtifactRef, ModelVersionPublished
from services.common.subscriber import LoadedModel
from services.evaluator.scored_versions import pick_challenger
from tests.services.evaluator.data import config, tree

CFG = config()
PREDICTOR = tree(CFG, 0, n=200)


def loaded(version: int, kind: Literal["online", "batch"], alias: str) -> LoadedModel:
    meta = ModelVersionPublished(
        model="loans",
        version=version,
        kind=kind,
        flavor="sklearn",
        algorithm="DecisionTreeClassifier",
        artifact=ArtifactRef(uri="file:///a", sha256="0" * 64, signature="ab", key_id="k", size=1),
        spec_sha256=CFG.spec_sha256(),
    )
    return LoadedModel(
        model="loans",
        version=version,
        alias=alias,
        predictor=PREDICTOR,
        meta=meta,
        loaded_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_ms=1.0,
    )


def test_a_batch_champion_without_challenger_is_challenged_by_the_online_model() -> None:
    batch, online = loaded(5, "batch", "champion"), loaded(9, "online", "online")
    assert pick_challenger(batch, None, online) is online


def test_an_explicit_challenger_comes_first() -> None:
    batch, online = loaded(5, "batch", "champion"), loaded(9, "online", "online")
    challenger = loaded(7, "batch", "challenger")
    assert pick_challenger(batch, challenger, online) is challenger


def test_an_online_champion_already_learns_so_nothing_challenges_it() -> None:
    champion, online = loaded(8, "online", "champion"), loaded(9, "online", "online")
    assert pick_challenger(champion, None, online) is None
    assert pick_challenger(None, None, online) is None
